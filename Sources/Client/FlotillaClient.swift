// The API client lives here (fleet v1 and /flotilla/v1 over a unix socket or TCP).
