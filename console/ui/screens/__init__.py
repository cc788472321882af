"""Screens of the agent console: the wall, one conversation, the supervisor view."""
