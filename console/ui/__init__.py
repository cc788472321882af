"""The Textual agent console: the wall of live conversations, takeover, supervisor view.

The only package in Tandem that imports ``textual``. Import :mod:`console.ui.app` lazily (the
CLI does so inside the command) so ``tandem --help`` never pays for Textual.
"""
