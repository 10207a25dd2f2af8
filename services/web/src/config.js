// Replaced per server: the build writes production defaults (or $MOP_API_BASE / $MOP_WS_BASE),
// `make run` and nginx answer /config.js themselves. Keep this a plain script, loaded first.
window.MOP_CONFIG = { apiBase: "https://api.chat5202ol.xyz", wsBase: "https://ws-api.chat5202ol.xyz" };
