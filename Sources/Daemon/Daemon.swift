// The daemon's composition lives here.
