"""The launcher: venue, segments, processes, supervision, ordered shutdown, summary."""
