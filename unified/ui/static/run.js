// The run page: a vis-timeline Gantt of every attempt, and live updates (polling) of the graph, the timeline
// and the task table until the run ends. Names from the server go into the page with textContent only.
(function () {
  "use strict";
  var POLL_MS = 1500;

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

  function signature(data) {
    return data.run.state + "|" + data.tasks.map(function (t) { return t.id + ":" + t.state + ":" + t.attempts; }).join(",");
  }

  document.addEventListener("DOMContentLoaded", function () {
    var page = document.getElementById("run-page");
    if (!page) return;
    var dataUrl = page.getAttribute("data-data-url"), liveUrl = page.getAttribute("data-live-url");
    var box = document.getElementById("timeline"), timeline = null, dataset = null, groups = null;
    var touched = false, last = null, wantGraph = false;

    function addGroups(data) {  // tasks added while the run goes on (ctx.add_task) get their line
      data.tasks.forEach(function (t, n) {
        if (!groups.get(t.id)) groups.add({ id: t.id, content: text("span", t.id), order: n });
      });
    }

    function draw(data) {
      if (!window.vis || !box) return;
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

    function refreshLive() {
      if (window.htmx) window.htmx.ajax("GET", liveUrl, { target: "#run-live", swap: "outerHTML" });
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
      var url = dataUrl + (wantGraph ? "?graph=1" : "");
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) {
          if (r.status === 401 || r.redirected) {  // the session ended: sign in, then come back here
            var here = window.location.pathname + window.location.search;
            window.location.assign(r.headers.get("HX-Redirect") || "/login?next=" + encodeURIComponent(here));
            return null;
          }
          if (!r.ok) throw new Error("HTTP " + r.status);
          return r.json();
        })
        .then(function (data) {
          if (!data) return;
          recolour(data);
          draw(data);
          var sig = signature(data);
          if (sig !== last) refreshLive();  // the first time too: the run may have moved since the page was made
          last = sig;
          page.setAttribute("data-state", data.run.state);
          if (wantGraph) {
            window.setTimeout(poll, 0);  // at once: the graph's new nodes
          } else if (data.run.state === "running" || data.tasks.some(function (t) { return t.state === "running"; })) {
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
