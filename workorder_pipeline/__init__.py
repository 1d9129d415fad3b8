"""The work-order pipeline, installed as this one top-level package.

Its subpackages are symbolic links to the repository's top-level folders (`streams/`,
`processors/`, `schemas/`, ...): the code lives there, and is imported only as
`workorder_pipeline.<folder>`, so nothing installed can clash with another distribution's
`config`, `api` or `services`, and no module is loaded twice under two names.
"""
