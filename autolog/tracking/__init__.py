"""The tracking core: entities, fluent API, client, writer, stores, search."""
