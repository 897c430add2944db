"""Moving a user's data in and out: `groupware import`, `groupware export`,
`groupware backup` and `groupware restore`.

Like the other admin commands these work on the configured storage directly (an admin
does not know the user's password, so there is no store session to log on with); the
storage layer serialises writes, so they run while the server is serving.
"""
