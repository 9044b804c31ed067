// settings.js - Node-RED settings for running the example flows headless on loopback (the
// integration tests and the demo use it): no editor, HTTP on 127.0.0.1, the port and the
// broker from the environment. To use the flows in your own Node-RED, import the JSON files
// instead (Menu > Import) and set the broker in the "fleet broker" node.
//
//   NODE_RED_PORT       HTTP port for the flows' endpoints and the dashboard   (1880)
//   FLEET_MQTT_HOST     broker host                                            (127.0.0.1)
//   FLEET_MQTT_PORT     broker port                                            (1883)
//   FLEET_PREFIX        topic prefix commands are published under              (fleet)
//   FLEET_WEBHOOK_URL   where raised/escalated/cleared alerts are POSTed       (none: no calls)
process.env.FLEET_MQTT_HOST = process.env.FLEET_MQTT_HOST || "127.0.0.1";
process.env.FLEET_MQTT_PORT = process.env.FLEET_MQTT_PORT || "1883";
process.env.FLEET_PREFIX = process.env.FLEET_PREFIX || "fleet";

module.exports = {
    uiHost: "127.0.0.1",
    uiPort: parseInt(process.env.NODE_RED_PORT || "1880", 10),
    httpAdminRoot: false,
    httpNodeRoot: "/",
    flowFile: "flows.json",
    flowFilePretty: true,
    credentialSecret: false,
    disableEditor: true,
    diagnostics: { enabled: false },
    runtimeState: { enabled: false },
    telemetry: { enabled: false },
    logging: { console: { level: "warn", metrics: false, audit: false } },
    externalModules: { autoInstall: false, palette: { allowInstall: false } },
    functionExternalModules: false,
    editorTheme: { projects: { enabled: false } },
};
