"""The agency side of the national network: statutory tasks, lookups, batches, the change
feed, agency codes (機関別符号) and prefecture extraction as of a date.

Everything here runs against the national database; see docs/agency-api.md.
"""
