"""Home Assistant over MQTT discovery: every person and every scale appear by themselves.

`settings` is the `[mqtt]` section; `entities` maps the vocabulary to the keys Home Assistant users
know from bodymiscale; `discovery` and `states` render what is published (sans-I/O); `commands`
parses what Home Assistant sends back; `link` is the aiomqtt shell that runs inside `serve`.
"""
