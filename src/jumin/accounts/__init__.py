"""Staff accounts, agency API clients, roles, MFA and sessions."""
