"""The operator console: server-rendered pages under /console (api.routes.console), signed in
with an API key kept in an HttpOnly cookie, refreshed live by a small script of our own
(static/console.js) that also draws the overview's charts. No front-end build, nothing fetched
from elsewhere."""
