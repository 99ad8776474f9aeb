"""A stand-in for the InfluxDB 2.x write API in front of the real influxd 1.6.7, which predates
`/api/v2/*` (reference: dns-influx-grafana.md §3.1). It translates `POST /api/v2/write?bucket=B`
into `POST /write?db=B` and checks the token, so the real `influxdb-client` runs end to end against
a real storage engine. It is not an InfluxDB 2 server: no orgs, no Flux, no buckets API."""

from __future__ import annotations

import aiohttp
from aiohttp import web


def make_shim(influx_url: str, token: str) -> web.Application:
    async def write(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Token {token}":
            return web.json_response({"code": "unauthorized", "message": "unauthorized access"}, status=401)
        bucket = request.query.get("bucket", "")
        parameters = {"db": bucket.split("/")[0], "precision": request.query.get("precision", "ns")}
        body = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            import gzip

            body = gzip.decompress(body)
        async with aiohttp.ClientSession() as session, session.post(
            f"{influx_url}/write", params=parameters, data=body
        ) as response:
            text = await response.text()
            if response.status == 404:
                return web.json_response({"code": "not found", "message": f'bucket "{bucket}" not found'},
                                         status=404)
            return web.Response(status=response.status, text=text)

    async def ping(_: web.Request) -> web.Response:
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/api/v2/write", write)
    app.router.add_get("/ping", ping)
    return app
