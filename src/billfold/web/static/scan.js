// Reading a merchant's QR code on the pay page (web/templates/wallet/pay.html), in the
// browser with the vendored jsQR: from the camera (getUserMedia into a <video>, a frame at a
// time through a canvas) or from a picture the person picks. Either way the code's text lands
// in the paste box and its form is sent, so that the server reads and shows it. The camera is
// stopped as soon as a code is read, or when the person stops it or leaves the page.
(function () {
  "use strict";
  var root = document.querySelector("[data-scan]");
  if (!root) { return; }
  var start = root.querySelector("[data-scan-start]");
  var stop = root.querySelector("[data-scan-stop]");
  var video = root.querySelector("[data-scan-video]");
  var file = root.querySelector("[data-scan-file]");
  var status = root.querySelector("[data-scan-status]");
  var form = document.querySelector("[data-scan-form]");
  var payload = document.querySelector("[data-scan-payload]");
  var canvas = document.createElement("canvas");
  var stream = null;

  function say(text) { status.textContent = text; }

  function decode(source, width, height) {
    if (!width || !height || typeof window.jsQR !== "function") { return null; }
    canvas.width = width;
    canvas.height = height;
    var context = canvas.getContext("2d", { willReadFrequently: true });
    context.drawImage(source, 0, 0, width, height);
    var pixels = context.getImageData(0, 0, width, height);
    var found = window.jsQR(pixels.data, width, height, { inversionAttempts: "attemptBoth" });
    return found && found.data ? found.data : null;
  }

  function found(text) {
    stopCamera();
    payload.value = text;
    say("Code read.");
    if (form.requestSubmit) { form.requestSubmit(); } else { form.submit(); }
  }

  function stopCamera() {
    if (stream) {
      stream.getTracks().forEach(function (track) { track.stop(); });
      stream = null;
    }
    video.srcObject = null;
    video.hidden = true;
    stop.hidden = true;
    start.hidden = false;
  }

  function scanFrame() {
    if (!stream) { return; }
    if (video.readyState >= 2) {
      var text = decode(video, video.videoWidth, video.videoHeight);
      if (text) { found(text); return; }
    }
    window.requestAnimationFrame(scanFrame);
  }

  start.addEventListener("click", function () {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      say("This browser cannot use a camera here: pick a picture of the code or paste it.");
      return;
    }
    say("Starting the camera…");
    navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false })
      .then(function (media) {
        stream = media;
        video.srcObject = media;
        video.hidden = false;
        stop.hidden = false;
        start.hidden = true;
        return video.play();
      })
      .then(function () {
        say("Point the camera at the code.");
        window.requestAnimationFrame(scanFrame);
      })
      .catch(function () {
        stopCamera();
        say("The camera is not available: pick a picture of the code or paste it.");
      });
  });

  stop.addEventListener("click", function () { stopCamera(); say("Camera stopped."); });
  window.addEventListener("pagehide", stopCamera);

  file.addEventListener("change", function () {
    var picked = file.files && file.files[0];
    if (!picked) { return; }
    say("Reading the picture…");
    var address = URL.createObjectURL(picked);
    var image = new Image();
    image.onload = function () {
      var text = decode(image, image.naturalWidth, image.naturalHeight);
      URL.revokeObjectURL(address);
      if (text) { found(text); } else { say("No QR code found in that picture: try another, or paste the code."); }
    };
    image.onerror = function () {
      URL.revokeObjectURL(address);
      say("That file is not a picture this browser can read.");
    };
    image.src = address;
  });
})();
