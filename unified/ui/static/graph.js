// Task graphs: dagre computes the layout; this file draws it as SVG with pan and zoom, and recolours nodes.
(function () {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";
  var NODE_W = 164, NODE_H = 32, MAX_LABEL = 20, MIN_SCALE = 0.7, MAX_HEIGHT = 640;

  function el(name, attrs, parent) {
    var node = document.createElementNS(SVG, name);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (parent) parent.appendChild(node);
    return node;
  }

  function clip(text) {
    return text.length > MAX_LABEL ? text.slice(0, MAX_LABEL - 1) + "…" : text;
  }

  // a smooth path through dagre's edge points (a uniform B-spline, as d3's curveBasis draws it)
  function curve(pts) {
    if (pts.length < 3) return "M" + pts[0].x + "," + pts[0].y + " L" + pts[pts.length - 1].x + "," + pts[pts.length - 1].y;
    var d = "M" + pts[0].x + "," + pts[0].y;
    var a = pts[0], b = pts[1];
    d += " L" + (5 * a.x + b.x) / 6 + "," + (5 * a.y + b.y) / 6;
    for (var i = 2; i <= pts.length; i++) {
      var c = i < pts.length ? pts[i] : b;
      d += " C" + (2 * a.x + b.x) / 3 + "," + (2 * a.y + b.y) / 3 + " " + (a.x + 2 * b.x) / 3 + "," + (a.y + 2 * b.y) / 3 +
        " " + (a.x + 4 * b.x + c.x) / 6 + "," + (a.y + 4 * b.y + c.y) / 6;
      a = b;
      b = c;
    }
    return d + " L" + pts[pts.length - 1].x + "," + pts[pts.length - 1].y;
  }

  function Graph(container, data) {
    this.container = container;
    this.draw(data);
    this.enablePanZoom();
  }

  // lay the nodes out and draw them (again, when a run gained tasks), fitted to the box
  Graph.prototype.draw = function (data) {
    var container = this.container;
    this.icons = data.icons || {};
    this.nodes = {};
    var g = new dagre.graphlib.Graph();
    g.setGraph({ rankdir: data.direction || "LR", nodesep: 14, ranksep: 44, marginx: 20, marginy: 20 });
    g.setDefaultEdgeLabel(function () { return {}; });
    data.nodes.forEach(function (n) { g.setNode(n.id, { width: NODE_W, height: NODE_H }); });
    data.nodes.forEach(function (n) {
      n.deps.forEach(function (d) { if (g.hasNode(d)) g.setEdge(d, n.id); });
    });
    dagre.layout(g);
    this.width = g.graph().width || NODE_W;
    this.height = g.graph().height || NODE_H;

    var svg = el("svg", { "aria-hidden": "true" });
    var defs = el("defs", {}, svg);
    var marker = el("marker", { id: container.id + "-arrow", viewBox: "0 0 10 10", refX: "9", refY: "5",
      markerWidth: "7", markerHeight: "7", orient: "auto-start-reverse" }, defs);
    el("path", { d: "M0,0 L10,5 L0,10 z", "class": "arrow" }, marker);
    var edges = el("g", {}, svg), layer = el("g", {}, svg);
    g.edges().forEach(function (e) {
      el("path", { d: curve(g.edge(e).points), "class": "edge", "marker-end": "url(#" + container.id + "-arrow)" }, edges);
    });
    var self = this;
    data.nodes.forEach(function (n) {
      var pos = g.node(n.id);
      var holder = n.href ? el("a", { href: n.href }, layer) : layer;
      var group = el("g", { transform: "translate(" + (pos.x - NODE_W / 2) + "," + (pos.y - NODE_H / 2) + ")" }, holder);
      el("rect", { width: NODE_W, height: NODE_H, rx: 7 }, group);
      var icon = el("text", { x: 14, y: NODE_H / 2, "text-anchor": "middle", "class": "node-icon" }, group);
      var label = el("text", { x: 26, y: NODE_H / 2 }, group);
      label.textContent = clip(n.label || n.id);
      var title = el("title", {}, group);
      self.nodes[n.id] = { group: group, icon: icon, title: title, label: n.label || n.id };
      self.setState(n.id, n.state);
    });
    container.textContent = "";
    container.appendChild(svg);
    this.svg = svg;
    this.fit();
  };

  Graph.prototype.has = function (id) {
    return Object.prototype.hasOwnProperty.call(this.nodes, id);
  };

  Graph.prototype.setState = function (id, state) {
    var node = this.nodes[id];
    if (!node) return;
    node.group.setAttribute("class", "node node-" + state);
    node.icon.textContent = this.icons[state] || "•";
    node.title.textContent = id + " — " + (state === "none" ? "not run yet" : state);
  };

  Graph.prototype.view = function (x, y, scale) {
    this.scale = scale;
    this.x = x;
    this.y = y;
    var w = this.container.clientWidth / scale, h = this.container.clientHeight / scale;
    this.svg.setAttribute("viewBox", [x, y, w, h].join(" "));
  };

  // fit the width (never smaller than MIN_SCALE, so labels stay readable), grow the box up to MAX_HEIGHT
  Graph.prototype.fit = function () {
    var width = this.container.clientWidth || 800;
    var floor = width < 600 ? MIN_SCALE * 0.65 : MIN_SCALE;  // a phone shows more of the graph, smaller
    var scale = Math.max(floor, Math.min(1, width / this.width));
    var tallest = Math.min(MAX_HEIGHT, window.innerHeight * 0.7);
    this.container.style.height = Math.min(tallest, Math.max(160, this.height * scale + 8)) + "px";
    var fitsTall = this.height * scale <= this.container.clientHeight;
    var x = this.width * scale < width ? -(width / scale - this.width) / 2 : 0;
    var y = fitsTall ? -(this.container.clientHeight / scale - this.height) / 2 : 0;
    this.view(x, y, scale);
  };

  // the whole graph in the box, however small that makes it (the Fit button)
  Graph.prototype.fitAll = function () {
    var w = this.container.clientWidth, h = this.container.clientHeight;
    var scale = Math.min(1, w / this.width, h / this.height);
    this.view(-(w / scale - this.width) / 2, -(h / scale - this.height) / 2, scale);
  };

  Graph.prototype.zoom = function (factor, cx, cy) {
    var scale = Math.max(0.15, Math.min(3, this.scale * factor));
    cx = cx === undefined ? this.container.clientWidth / 2 : cx;
    cy = cy === undefined ? this.container.clientHeight / 2 : cy;
    var gx = this.x + cx / this.scale, gy = this.y + cy / this.scale;
    this.view(gx - cx / scale, gy - cy / scale, scale);
  };

  Graph.prototype.enablePanZoom = function () {
    var self = this, box = this.container, start = null, moved = false;
    box.addEventListener("wheel", function (e) {
      e.preventDefault();
      var r = box.getBoundingClientRect();
      self.zoom(e.deltaY < 0 ? 1.15 : 1 / 1.15, e.clientX - r.left, e.clientY - r.top);
    }, { passive: false });
    box.addEventListener("pointerdown", function (e) {
      start = { x: e.clientX, y: e.clientY, vx: self.x, vy: self.y };
      moved = false;
    });
    window.addEventListener("pointermove", function (e) {
      if (!start) return;
      var dx = e.clientX - start.x, dy = e.clientY - start.y;
      if (!moved && Math.abs(dx) + Math.abs(dy) < 4) return;
      moved = true;
      box.classList.add("dragging");
      self.view(start.vx - dx / self.scale, start.vy - dy / self.scale, self.scale);
    });
    window.addEventListener("pointerup", function () { start = null; box.classList.remove("dragging"); });
    box.addEventListener("click", function (e) { if (moved) { e.preventDefault(); moved = false; } }, true);
    var wrap = box.parentNode;
    wrap.querySelectorAll("[data-graph-zoom]").forEach(function (b) {
      b.addEventListener("click", function () { self.zoom(parseFloat(b.getAttribute("data-graph-zoom"))); });
    });
    var fit = wrap.querySelector("[data-graph-fit]");
    if (fit) fit.addEventListener("click", function () { self.fitAll(); });
  };

  // the graph in ``box``: drawn the first time, drawn again with new data after (unifiedGraphs[box.id] holds it)
  function show(box, data) {
    var graph = window.unifiedGraphs[box.id];
    if (graph) graph.draw(data);
    else if (data.nodes.length) window.unifiedGraphs[box.id] = new Graph(box, data);
  }

  window.unifiedGraphs = { show: show };
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll(".graph").forEach(function (box) {
      show(box, JSON.parse(document.getElementById(box.id + "-data").textContent));
    });
  });
})();
