"""The playground: a local web page that looks and behaves like a Slack thread, backed by the real
bridge and the simulators (``bridge playground``, ``bridge demo --web``)."""
