// IMG pages: small progressive enhancements. Every page works without this script; it only
// localizes times, asks before destructive buttons, fits the submit form to the chosen
// template, and streams a running job's log and state (Server-Sent Events).
(function () {
  "use strict";
  var FINAL = { done: true, failed: true, cancelled: true };

  function localTimes() {
    var els = document.querySelectorAll("time[datetime]");
    for (var i = 0; i < els.length; i++) {
      var d = new Date(els[i].getAttribute("datetime"));
      if (!isNaN(d.getTime())) {
        els[i].title = els[i].textContent;
        els[i].textContent = d.toLocaleString();
      }
    }
  }

  function confirms() {
    document.addEventListener("submit", function (ev) {
      var msg = ev.target.getAttribute && ev.target.getAttribute("data-confirm");
      if (msg && !window.confirm(msg)) ev.preventDefault();
    });
  }

  // Submit form: the platform field only for kickstarter templates, with that template's
  // platforms; the "suggested" choices name what the template suggests.
  function submitForm() {
    var tpl = document.getElementById("template");
    if (!tpl) return;
    var field = document.getElementById("platform-field");
    var input = document.getElementById("platform");
    var list = document.getElementById("platforms");
    var typeDefault = document.querySelector("#imagetype option[data-default]");
    var archDefault = document.querySelector("#arch option[data-default]");
    var typeText = typeDefault ? typeDefault.textContent : "";
    var archText = archDefault ? archDefault.textContent : "";
    function update() {
      var opt = tpl.options[tpl.selectedIndex];
      var kickstarter = !!opt && opt.getAttribute("data-kind") === "kickstarter";
      if (field) {
        field.hidden = !kickstarter;
        if (input) input.disabled = !kickstarter;
        var items = field.querySelectorAll("li[data-template]");
        for (var i = 0; i < items.length; i++) items[i].hidden = items[i].getAttribute("data-template") !== opt.value;
        var platforms = [];
        try { platforms = JSON.parse(opt.getAttribute("data-platforms") || "[]"); } catch (e) { platforms = []; }
        if (list && kickstarter) {
          while (list.firstChild) list.removeChild(list.firstChild);
          platforms.forEach(function (p) {
            var o = document.createElement("option");
            o.value = p;
            list.appendChild(o);
          });
        }
      }
      var t = opt ? opt.getAttribute("data-imagetype") : "";
      var a = opt ? opt.getAttribute("data-arch") : "";
      if (typeDefault) typeDefault.textContent = t ? "as the template suggests: " + t : typeText;
      if (archDefault) archDefault.textContent = a ? "as the template suggests: " + a : archText;
    }
    tpl.addEventListener("change", update);
    update();
  }

  // Job page: the server rendered the log's first `data-lines` complete lines; the event
  // stream starts from the beginning, so those are skipped (again after each reconnect).
  function liveJob() {
    var log = document.getElementById("log");
    var src = log && log.getAttribute("data-events");
    if (!src || !window.EventSource) return;
    var url = new URL(src, location.href);
    if (url.origin !== location.origin) url = new URL(url.pathname + url.search, location.href);
    var shown = parseInt(log.getAttribute("data-lines"), 10) || 0;
    var seen = 0;
    var leaving = false;
    var status = document.getElementById("status");
    var hint = document.getElementById("live-hint");
    if (hint) hint.textContent = "The log grows while the job runs; the page reloads when it ends.";
    log.scrollTop = log.scrollHeight;

    var es = new EventSource(url.href);
    function reload(delay) {
      es.close();
      if (leaving) return;
      leaving = true;
      setTimeout(function () { location.reload(); }, delay);
    }
    es.addEventListener("open", function () { seen = 0; });
    es.addEventListener("log", function (ev) {
      seen++;
      if (seen <= shown) return;
      var atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 8;
      log.appendChild(document.createTextNode(ev.data + "\n"));
      shown++;
      if (atEnd) log.scrollTop = log.scrollHeight;
    });
    es.addEventListener("state", function (ev) {
      var s;
      try { s = JSON.parse(ev.data); } catch (e) { return; }
      if (status && s.status) {
        status.textContent = s.status;
        status.className = "state state-" + s.status;
        status.setAttribute("data-status", s.status);
        document.title = document.title.replace(/\([a-z]+\)/, "(" + s.status + ")");
      }
      var err = document.getElementById("job-error");
      if (err && s.error) {
        err.textContent = s.error;
        err.hidden = false;
      }
      // Final: reload once so the downloads and buttons fit the new state.
      if (FINAL[s.status]) reload(800);
    });
    // The job was deleted: the reload shows that.
    es.addEventListener("gone", function () { reload(0); });
    // A stream the browser gave up on (e.g. refused): fall back to reloading, as without JS.
    es.addEventListener("error", function () {
      if (es.readyState === EventSource.CLOSED) reload(5000);
    });
  }

  function start() {
    localTimes();
    confirms();
    submitForm();
    liveJob();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
