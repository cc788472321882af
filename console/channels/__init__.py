"""Where customers come from: simulated customers (:mod:`console.channels.sim`, with the
personas in :mod:`console.channels.personas`) and the HTTP channel API
(:mod:`console.channels.api`).

Nothing here imports Textual. Importing the package imports nothing else, so the simulator
can be used without the HTTP server's dependencies being loaded.
"""
