"""Where customers come from: the simulator (``sim``) and, later, the HTTP channel API.

Nothing here imports Textual; importing the package itself imports nothing else, so
``console.channels.sim`` can be used without the HTTP server's dependencies.
"""
