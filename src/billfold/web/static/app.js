// Billfold's own script (the CSP allows no inline script). Tells the server the person's time
// zone, so that times are shown in it.
(function () {
  "use strict";
  try {
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (zone && document.cookie.indexOf("bf_tz=" + encodeURIComponent(zone)) === -1) {
      document.cookie = "bf_tz=" + encodeURIComponent(zone) + "; path=/; max-age=31536000; SameSite=Lax";
    }
  } catch (e) { /* no zone: UTC */ }
})();
