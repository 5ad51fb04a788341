/* The staff window's only script of its own (the pages work without it).
 *
 * 1. A form marked data-busy="…" shows a progress bar with that text while the server
 *    works (issuing a signed certificate, setting up a card), and is not sent twice: a
 *    second click would issue a second certificate.
 * 2. A button with data-print-pdf="id" opens the signed PDF of the link with that id in
 *    a new tab, where the browser's PDF viewer prints it.
 */
(function () {
  "use strict";

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.dataset.busy) {
      return;
    }
    if (form.dataset.sent === "true") {
      event.preventDefault();
      return;
    }
    form.dataset.sent = "true";
    var status = form.querySelector("[data-busy-status]");
    if (status) {
      var label = document.createElement("span");
      label.textContent = form.dataset.busy;
      var bar = document.createElement("progress");
      bar.setAttribute("aria-label", form.dataset.busy);
      status.replaceChildren(label, bar);
    }
    form.querySelectorAll("button[type=submit]").forEach(function (button) {
      button.setAttribute("aria-disabled", "true");
    });
  });

  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("[data-print-pdf]") : null;
    if (!button) {
      return;
    }
    var link = document.getElementById(button.dataset.printPdf);
    if (!link) {
      return;
    }
    var href = link.getAttribute("href");
    var comma = href.indexOf(",");
    var bytes = atob(href.slice(comma + 1));
    var buffer = new Uint8Array(bytes.length);
    for (var i = 0; i < bytes.length; i += 1) {
      buffer[i] = bytes.charCodeAt(i);
    }
    var url = URL.createObjectURL(new Blob([buffer], { type: "application/pdf" }));
    window.open(url, "_blank", "noopener");
  });
})();
