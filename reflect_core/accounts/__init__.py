"""Who may do what: users and ownership, the login file, resource limits and rate limits.

Modules: ``access``, ``auth_config`` (with the deployment profile), ``limits``, ``machine`` (this machine's cap
on local training), ``rate_limit``.
"""

from reflect_core.accounts.access import LOCAL_USER, User, check_owner

__all__ = ["LOCAL_USER", "User", "check_owner"]
