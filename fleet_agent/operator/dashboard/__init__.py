"""`fleet-agent dashboard`: the fleet in a browser, served from the broker alone.

A small Starlette app on uvicorn (the `dashboard` extra) over the operator's `FleetClient`: JSON
endpoints, a coalesced Server-Sent Events stream and a page of plain HTML/CSS/JS (no build
step). `view.py` turns the client's `Device`s into what the page shows (pure), `hub.py` fans
changes out to browsers, `guard.py` decides who may look and who may act, `app.py` wires the
routes; the command is `fleet_agent/operator/dashboard_cmd.py`. The device agent never
imports any of it.
"""
