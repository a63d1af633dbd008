"""autolog's built-in integrations, one module per framework.

Each module defines one :class:`autolog.Integration` subclass and is
registered through the ``autolog.integrations`` entry-point group, exactly as a
third-party integration is. Importing a module here never imports its
framework: patching happens when the framework itself is imported.
"""
