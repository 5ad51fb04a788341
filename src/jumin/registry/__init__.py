"""The municipal resident register: persons, households, events, history, outbox."""
