// RLM Tracer graph: one vis.Network per mounted element, kept across reruns and fed DataSet diffs
// so zoom, pan and selection survive live updates. vis-network is served from /app/static.
let loading = null;

function loadVis(prefix) {
  if (window.vis && window.vis.Network) return Promise.resolve(window.vis);
  if (!loading) {
    loading = new Promise((resolve, reject) => {
      const css = document.createElement("link");
      css.rel = "stylesheet";
      css.href = prefix + "vis-network.css";
      document.head.appendChild(css);
      const s = document.createElement("script");
      s.src = prefix + "vis-network.min.js";
      s.onload = () => resolve(window.vis);
      s.onerror = () => {
        loading = null;
        reject(new Error("cannot load " + s.src));
      };
      document.head.appendChild(s);
    });
  }
  return loading;
}

// Titles arrive HTML-escaped; a text-only element shows them as typed and can never become markup.
function tooltip(title) {
  const el = document.createElement("div");
  el.style.whiteSpace = "pre-wrap";
  el.style.maxWidth = "420px";
  el.textContent = title.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");
  return el;
}

// Only items whose JSON changed are handed to vis: re-updating 2,000 unchanged nodes costs a redraw.
function sync(set, seen, items, convert) {
  const keep = new Set();
  const changed = [];
  for (const item of items) {
    keep.add(item.id);
    const key = JSON.stringify(item);
    if (seen.get(item.id) !== key) {
      seen.set(item.id, key);
      changed.push(convert ? convert(item) : item);
    }
  }
  const gone = set.getIds().filter((id) => !keep.has(id));
  gone.forEach((id) => seen.delete(id));
  if (gone.length) set.remove(gone);
  if (changed.length) set.update(changed);
}

function typingSomewhere(host) {
  const el = document.activeElement;
  if (!el || el === document.body || host.contains(el)) return false;
  return el.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(el.tagName);
}

function create(vis, host) {
  const nodes = new vis.DataSet();
  const edges = new vis.DataSet();
  const network = new vis.Network(host, { nodes, edges }, {
    physics: { enabled: false },
    layout: { improvedLayout: false },
    interaction: { hover: true, dragNodes: false, tooltipDelay: 150 },
    edges: { arrows: { to: { enabled: true, scaleFactor: 0.5 } }, smooth: false, color: "#9a9a9a" },
    nodes: { font: { size: 12 } },
  });
  const s = { vis, nodes, edges, network, seenN: new Map(), seenE: new Map(), fitted: false };
  // a growing graph keeps fitting the view until the user zooms or pans it themselves
  network.on("zoom", () => (s.userMoved = true));
  network.on("dragEnd", () => (s.userMoved = true));
  network.on("click", (p) => {
    if (p.nodes.length) {
      s.clicked = p.nodes[0];
      s.send("node_click", p.nodes[0]);
    }
  });
  s.onKey = (ev) => {
    if (!host.isConnected || ev.altKey || ev.ctrlKey || ev.metaKey || typingSomewhere(host)) return;
    const step = { ArrowLeft: -1, k: -1, ArrowRight: 1, j: 1 }[ev.key];
    if (step === undefined) return;
    ev.preventDefault();
    s.send("step", step);
  };
  document.addEventListener("keydown", s.onKey);
  s.destroy = () => {
    document.removeEventListener("keydown", s.onKey);
    network.destroy();
    if (window.__visnet === network) window.__visnet = undefined;
    host.__rlmGraph = undefined;
  };
  return s;
}

function render(vis, host, data, send) {
  const s = host.__rlmGraph || (host.__rlmGraph = create(vis, host));
  s.send = send; // the newest callback, in case Streamlit hands out a fresh one per render
  window.__visnet = s.network;
  sync(s.nodes, s.seenN, data.nodes || [], (n) => (n.title ? { ...n, title: tooltip(n.title) } : n));
  // data-flow edges carry escaped titles too; an empty title must reach vis as "no tooltip"
  sync(s.edges, s.seenE, data.edges || [], (e) => ({
    ...e,
    title: e.title ? tooltip(e.title) : undefined,
  }));
  const count = s.nodes.length;
  let fitted = false;
  if (count && (!s.fitted || (!s.userMoved && count !== s.fittedCount))) {
    fitted = true;
    s.network.fit();
    s.fitted = true;
    s.fittedCount = count;
    s.fitToken = data.fit_token;
  } else if (count && data.fit_token !== s.fitToken) {
    fitted = true;
    s.fitToken = data.fit_token;
    s.userMoved = false;
    s.network.fit({ animation: { duration: 300 } });
  }
  const sel = data.selected || null;
  if (sel !== s.selected && (sel === null || s.nodes.get(sel))) {
    s.selected = sel;
    s.network.selectNodes(sel ? [sel] : []);
    // the first view and a refit (the graph grew or a group opened, and the user had not moved
    // the camera) show everything; a selection echoed back after a click must not move it either
    if (sel && sel !== s.clicked && !fitted) s.network.focus(sel, { animation: { duration: 300 } });
    s.clicked = null;
  }
}

export default function (component) {
  const { data, setTriggerValue, parentElement } = component;
  const host = parentElement.querySelector(".rlm-graph");
  if (!host) return;
  host.style.height = (data.height || 600) + "px";
  loadVis(data.static || "/app/static/")
    .then((vis) => render(vis, host, data, setTriggerValue))
    .catch((err) => {
      host.textContent = String(err);
    });
  // Streamlit also runs this cleanup when a newer render overtook this one; destroy only when the
  // element has really left the page.
  return () => {
    setTimeout(() => {
      if (!host.isConnected && host.__rlmGraph) host.__rlmGraph.destroy();
    }, 0);
  };
}
