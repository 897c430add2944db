"""The adapter: everything a gateway needs to reach the groupware store."""
