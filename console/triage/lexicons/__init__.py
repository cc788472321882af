"""Hand-written triage lexicons (phrases in :func:`console.triage.text.compile_pattern` syntax).

Written by the Tandem authors from general knowledge of how people talk to support; none of
it is learned from, or copied out of, any data set.
"""
