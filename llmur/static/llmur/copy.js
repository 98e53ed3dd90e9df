// Copy buttons: copies the value of the element named by data-target, falling back to select-and-copy
// where the Clipboard API is unavailable (plain-HTTP admin pages are not a secure context).
(function () {
  "use strict";
  document.querySelectorAll("button[data-target]").forEach(function (button) {
    button.addEventListener("click", function () {
      var field = document.getElementById(button.dataset.target);
      var status = document.getElementById("copy-status");
      function done(ok) { if (status) { status.textContent = ok ? "Copied." : "Select the key and copy it by hand."; } }
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(field.value).then(function () { done(true); }, function () { done(false); });
      } else {
        field.select();
        try { done(document.execCommand("copy")); } catch (e) { done(false); }
      }
    });
  });
})();
