"""A small HTTPS client of flotillad's api_listen (fleet's v1 API and Flotilla's routes).

One connection per request: a pooled connection that a partition left half-open would make the
next request wait for TCP to give up rather than for the request's own timeout."""

import http.client
import json
import socket
import ssl


class Unknown(Exception):
    """The request's outcome is not known: a timeout, a refused or lost connection."""


class Client:
    def __init__(self, host, port, ca_file, token):
        self.host = host
        self.port = port
        self.token = token
        self.context = ssl.create_default_context(cafile=ca_file) if ca_file else None

    def request(self, method, path, body=None, timeout=8.0):
        """(status, decoded JSON body or None). Raises Unknown when no answer came."""
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["X-Flotilla-Token"] = self.token
        if self.context is not None:
            connection = http.client.HTTPSConnection(self.host, self.port, timeout=timeout, context=self.context)
        else:
            connection = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            connection.request(method, path, body=data, headers=headers)
            response = connection.getresponse()
            raw = response.read()
            status = response.status
        except (OSError, http.client.HTTPException, socket.timeout, ssl.SSLError) as error:
            raise Unknown(f"{type(error).__name__}: {error}") from None
        finally:
            connection.close()
        if not raw:
            return status, None
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, {"raw": raw[:200].decode(errors="replace")}
