"""The web app: the wallet (/app), the merchant dashboard (/app/merchant) and the operator
console (/console), rendered on the server with Jinja2 and htmx from the same process and the
same context functions as the API (no second code path for money).

Like api/, it sits on top: its handlers parse a form, call one context function and render a
template. What makes it a web app lives here: sessions in a cookie (web.sessions), CSRF tokens
and security headers (web.pages), and the signed-in person (web.identity).
"""
