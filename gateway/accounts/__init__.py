"""Login accounts kept by the gateway: the store (``accounts.db``), the login throttle, the bounded
argon2 pool, the tokens (JWT) and the service over them. The bottom layer: imports ``gateway`` only.
"""
