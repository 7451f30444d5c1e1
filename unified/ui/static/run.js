// The run page: a vis-timeline Gantt of every attempt, and live updates (polling) of the graph, the timeline
// and the task table until the run ends. Names from the server go into the page with textContent only; the
// table's rows come from the server as HTML (its templates escape them), only those whose task moved.
(function () {
  "use strict";
  var POLL_MS = 1500, MAX_ROWS = 300;  // rows asked for at once (the server's MAX_LIVE_ROWS)

  function text(tag, value, cls) {
    var node = document.createElement(tag);
    node.textContent = value;
    if (cls) node.className = cls;
    return node;
  }

  function itemOf(item, n) {
    var content = text("span", item.label);
    content.setAttribute("title", item.group + " · " + item.label + (item.error ? " · " + item.error : ""));
    return { id: item.group + "#" + n, group: item.group, start: item.start, end: item.end, content: content,
      className: "tl-" + item.state, type: "range" };
  }

  function items(data) {
    var seen = {};
    return data.items.map(function (item) {
      seen[item.group] = (seen[item.group] || 0) + 1;
      return itemOf(item, seen[item.group]);
    });
  }

  // what a task row shows changes with its task's state and attempts (the row's data-stamp)
  function stamp(task) {
    return task.state + "." + task.attempts;
  }

  // a GET from this page; on a 401 or a redirect (the session ended) the browser goes to sign in, then back here
  function get(url, accept) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: accept } }).then(function (r) {
      if (r.status === 401 || r.redirected) {
        var here = window.location.pathname + window.location.search;
        window.location.assign(r.headers.get("HX-Redirect") || "/login?next=" + encodeURIComponent(here));
        return null;
      }
      if (!r.ok) throw new Error("HTTP " + r.status);
      return accept === "application/json" ? r.json() : r.text();
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var page = document.getElementById("run-page");
    if (!page) return;
    var dataUrl = page.getAttribute("data-data-url"), liveUrl = page.getAttribute("data-live-url");
    var box = document.getElementById("timeline"), timeline = null, dataset = null, groups = null;
    var touched = false, wantGraph = false;

    function addGroups(data) {  // tasks added while the run goes on (ctx.add_task) get their line
      data.tasks.forEach(function (t, n) {
        if (!groups.get(t.id)) groups.add({ id: t.id, content: text("span", t.id), order: n });
      });
    }

    function draw(data) {
      if (!window.vis || !box || !data.items) return;  // no items: a run too large for a timeline
      var list = items(data);
      if (!timeline) {
        groups = new vis.DataSet();
        addGroups(data);
        dataset = new vis.DataSet(list);
        timeline = new vis.Timeline(box, dataset, groups, {
          stack: false, groupOrder: "order", orientation: "top", maxHeight: 560, verticalScroll: true,
          zoomKey: "ctrlKey", margin: { item: 4, axis: 4 }, showCurrentTime: data.run.state === "running",
          tooltip: { followMouse: true }, selectable: true,
          format: { minorLabels: { millisecond: "SSS[ ms]" } },  // short runs: ticks in ms after a second's label
        });
        timeline.on("rangechange", function (props) { if (props.byUser) touched = true; });
        timeline.fit({ animation: false });
        return;
      }
      addGroups(data);
      var ids = {};
      list.forEach(function (i) { ids[i.id] = true; });
      dataset.update(list);
      dataset.getIds().forEach(function (id) { if (!ids[id]) dataset.remove(id); });
      if (!touched) timeline.fit({ animation: false });
    }

    // the head, and the rows of the table whose task moved since they were made, from the server; resolves to true
    // when more rows moved than one update brings (the next brings them)
    function refreshLive(data) {
      var body = document.querySelector("#run-tasks > tbody"), head = document.getElementById("run-live");
      if (!body || !head) return Promise.resolve(false);
      var changed = [];
      data.tasks.forEach(function (t, n) {
        var shown = body.rows[n];
        if (!shown || shown.getAttribute("data-stamp") !== stamp(t)) changed.push(n);
      });
      if (!changed.length && head.getAttribute("data-run-state") === data.run.state) return Promise.resolve(false);
      return get(liveUrl + "?rows=" + changed.slice(0, MAX_ROWS).join(","), "text/html").then(function (html) {
        if (html === null) return false;
        var parsed = document.createElement("template");
        parsed.innerHTML = html;
        var fresh = parsed.content.getElementById("run-live");
        if (fresh) head.replaceWith(fresh);
        parsed.content.querySelectorAll("#live-rows > tbody > tr").forEach(function (row) {
          var old = body.rows[Number(row.getAttribute("data-row"))];
          if (old) old.replaceWith(row); else body.appendChild(row);
        });
        return changed.length > MAX_ROWS;
      });
    }

    // recolour the graph; draw it again (from data.graph) once the run has tasks it does not show
    function recolour(data) {
      var graphs = window.unifiedGraphs, graph = graphs && graphs.graph, graphBox = document.getElementById("graph");
      if (data.graph && graphs && graphBox) {
        graphs.show(graphBox, data.graph);
        graph = graphs.graph;
      }
      wantGraph = !data.graph && !!graphs && !!graphBox &&  // asked once, at the next poll
        data.tasks.some(function (t) { return !graph || !graph.has(t.id); });
      if (graph) data.tasks.forEach(function (t) { graph.setState(t.id, t.state); });
    }

    function poll() {
      var finished = false, signedOut = false;
      get(dataUrl + (wantGraph ? "?graph=1" : ""), "application/json")
        .then(function (data) {
          if (!data) {
            signedOut = true;
            return false;
          }
          recolour(data);
          draw(data);
          page.setAttribute("data-state", data.run.state);
          finished = data.run.state !== "running" && !data.tasks.some(function (t) { return t.state === "running"; });
          return refreshLive(data);  // the first time too: the run may have moved since the page was made
        })
        .then(function (more) {
          if (signedOut) return;
          if (wantGraph) {
            window.setTimeout(poll, 0);  // at once: the graph's new nodes
          } else if (!finished || more) {
            window.setTimeout(poll, POLL_MS);
          } else if (timeline) {
            timeline.setOptions({ showCurrentTime: false });
          }
        })
        .catch(function () { window.setTimeout(poll, POLL_MS * 4); });
    }
    poll();
  });
})();
