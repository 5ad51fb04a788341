"""Imports every feature's models so that Alembic sees the whole metadata."""

from __future__ import annotations


def import_all_models() -> None:
    import jumin.accounts.models
    import jumin.audit.models
    import jumin.card.models
    import jumin.certificates.handover_models
    import jumin.certificates.models
    import jumin.certificates.widearea_models
    import jumin.interchange.models
    import jumin.network.agencies.models
    import jumin.network.identity.models
    import jumin.network.identity.widearea_models
    import jumin.network.models
    import jumin.registry.approval_models
    import jumin.registry.arrival_models
    import jumin.registry.models  # noqa: F401
