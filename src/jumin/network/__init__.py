"""The national identity network (住基ネット): identity store, lookups and codes.

Nothing municipal imports this package; the register reaches it only through
``jumin.network_client`` (DESIGN.md, "The shape of the system").
"""
