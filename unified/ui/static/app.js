// unified web UI: what every page shares. Data from the server is only ever put in the page with textContent.
(function () {
  "use strict";
  var csrf = document.querySelector('meta[name="csrf-token"]');

  // htmx requests carry the session's CSRF token (the server refuses a POST without it)
  document.addEventListener("htmx:configRequest", function (event) {
    if (csrf) event.detail.headers["X-CSRF-Token"] = csrf.getAttribute("content");
  });

  // forms that change something important ask first
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) event.preventDefault();
  });

  // follow mode: keep the newest log line in view
  function followLogs() {
    var wrap = document.getElementById("logs");
    if (!wrap || !wrap.getAttribute("data-follow")) return;
    var box = wrap.querySelector(".logs");
    if (box) box.scrollTop = box.scrollHeight;
  }
  // an error page's way back to the form it came from: the browser's own back keeps what was typed in it
  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest("[data-history-back]");
    if (link && window.history.length > 1) {
      event.preventDefault();
      window.history.back();
    }
  });

  // copy buttons put an element's text on the clipboard; where the browser has none (plain HTTP), they select it
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-copy]");
    var source = button && document.getElementById(button.getAttribute("data-copy"));
    if (!source) return;
    if (navigator.clipboard) {
      navigator.clipboard.writeText(source.textContent.trim()).then(
        function () { button.textContent = "Copied"; },
        function () { window.getSelection().selectAllChildren(source); });
    } else {
      window.getSelection().selectAllChildren(source);
    }
  });

  document.addEventListener("htmx:afterSettle", followLogs);
  document.addEventListener("DOMContentLoaded", followLogs);
})();
