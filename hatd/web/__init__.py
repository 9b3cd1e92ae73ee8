"""The owner's browser side: Login with HAT (/hatlogin) and the owner's own pages, rendered on the
server from the templates in this package, behind a session cookie instead of a token."""
