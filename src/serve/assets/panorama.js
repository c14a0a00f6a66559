/* Panorama's browser tracker: page views, events and sign-ins to POST /api/events.
 *
 *   <script src="https://cdp.example.com/panorama.js" data-write-key="pwk_..." async></script>
 *   panorama.track("add_to_cart", {product_id: "p1", price: 19.5});
 *   panorama.identify("42", {email: "ana@example.com"});
 *
 * A first-party cookie (`pan_aid`, two years) holds the visitor's anonymous id. Every event
 * has a messageId, so a retry after a failed request is counted once. Calls made before the
 * script loads (window.panorama = [["track", ...], ...]) are sent when it does.
 * data-auto-page="false" turns off the page view sent on load.
 */
(function () {
  "use strict";
  var script = document.currentScript;
  var endpoint = new URL("/api/events", script ? script.src : location.href).href;
  var writeKey = script && script.getAttribute("data-write-key");
  var COOKIE = "pan_aid", USER = "pan_uid";
  var queue = [], timer = null, userId = null;

  function uuid() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx".replace(/[xy]/g, function (c) {
      var r = (Math.random() * 16) | 0;
      return (c === "x" ? r : (r & 3) | 8).toString(16);
    });
  }
  function readCookie(name) {
    var m = document.cookie.match(new RegExp("(?:^|; )" + name + "=([^;]*)"));
    return m ? decodeURIComponent(m[1]) : null;
  }
  function anonymousId() {
    var id = readCookie(COOKIE);
    if (!id) {
      id = uuid();
      document.cookie = COOKIE + "=" + encodeURIComponent(id) +
        "; path=/; max-age=63072000; SameSite=Lax" + (location.protocol === "https:" ? "; Secure" : "");
    }
    return id;
  }
  try { userId = localStorage.getItem(USER); } catch (e) { /* storage blocked */ }

  function context() {
    return {
      page: { url: location.href, path: location.pathname, title: document.title, referrer: document.referrer },
      userAgent: navigator.userAgent,
      locale: navigator.language,
      library: { name: "panorama.js", version: "1" }
    };
  }
  function send(batch, attempt) {
    var body = JSON.stringify({ batch: batch, writeKey: writeKey, sentAt: new Date().toISOString() });
    // text/plain keeps the request "simple": no CORS preflight.
    return fetch(endpoint, { method: "POST", body: body, keepalive: body.length < 60000,
                             headers: { "Content-Type": "text/plain" }, credentials: "omit" })
      .then(function (r) {
        if (r.status >= 500 || r.status === 429) throw new Error("HTTP " + r.status);
        return r;
      })
      .catch(function (e) {
        if ((attempt || 0) < 4) {
          return new Promise(function (ok) { setTimeout(ok, 500 * Math.pow(2, attempt || 0)); })
            .then(function () { return send(batch, (attempt || 0) + 1); });
        }
        throw e;
      });
  }
  var inFlight = [];
  function flush() {
    timer = null;
    if (!queue.length) return;
    var batch = queue.splice(0, 100);
    var p = send(batch, 0).catch(function () { /* given up after retries */ });
    inFlight.push(p);
    p.then(function () { inFlight.splice(inFlight.indexOf(p), 1); });
    if (queue.length) flush();
  }
  function enqueue(ev) {
    ev.messageId = uuid();
    ev.anonymousId = anonymousId();
    if (userId && !ev.userId) ev.userId = userId;
    ev.timestamp = new Date().toISOString();
    ev.context = context();
    queue.push(ev);
    if (!timer) timer = setTimeout(flush, 0);
  }
  var api = {
    page: function (name, properties) {
      enqueue({ type: "page", name: name || document.title, properties: properties || {} });
    },
    track: function (event, properties) {
      enqueue({ type: "track", event: event, properties: properties || {} });
    },
    identify: function (id, traits) {
      if (id && typeof id === "object") { traits = id; id = null; }
      if (id) { userId = String(id); try { localStorage.setItem(USER, userId); } catch (e) {} }
      enqueue({ type: "identify", userId: userId, traits: traits || {} });
    },
    alias: function (newId) {
      enqueue({ type: "alias", previousId: anonymousId(), userId: String(newId) });
    },
    reset: function () {
      userId = null;
      try { localStorage.removeItem(USER); } catch (e) {}
      document.cookie = COOKIE + "=; path=/; max-age=0";
    },
    anonymousId: anonymousId,
    /* Resolves when every event queued so far has been answered. */
    flush: function () { flush(); return Promise.all(inFlight.slice()); }
  };
  var early = Array.isArray(window.panorama) ? window.panorama : [];
  window.panorama = api;
  early.forEach(function (call) { if (api[call[0]]) api[call[0]].apply(null, call.slice(1)); });
  if (!script || script.getAttribute("data-auto-page") !== "false") api.page();
  addEventListener("pagehide", function () {
    if (!queue.length || !navigator.sendBeacon) return;
    var body = JSON.stringify({ batch: queue.splice(0), writeKey: writeKey, sentAt: new Date().toISOString() });
    navigator.sendBeacon(endpoint, new Blob([body], { type: "text/plain" }));
  });
})();
