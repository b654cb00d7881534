// The playground page: draws the simulated Slack the server pushes, and sends what the person does.
// The server decides everything; this page keeps only what a Slack client keeps locally (who you
// are, which conversation and thread are open, the text being typed or edited).
"use strict";

const EMOJI = {
  eyes: "👀", white_check_mark: "✅", x: "❌", hourglass_flowing_sand: "⏳", octagonal_sign: "🛑",
  file_cabinet: "🗄️", arrow_double_up: "⏫", "+1": "👍", tada: "🎉", heart: "❤️", zzz: "💤",
  warning: "⚠️", question: "❓", rocket: "🚀", hourglass: "⌛", speech_balloon: "💬", memo: "📝",
  gear: "⚙️", wrench: "🔧", link: "🔗", arrows_counterclockwise: "🔄", heavy_check_mark: "✔️",
  raised_hand: "✋", hand: "✋", inbox_tray: "📥", outbox_tray: "📤", pencil2: "✏️", wastebasket: "🗑️",
  incoming_envelope: "📨", no_entry: "⛔", lock: "🔒", bulb: "💡", thinking_face: "🤔", see_no_evil: "🙈",
};
const QUICK_REACTIONS = ["eyes", "white_check_mark", "octagonal_sign", "file_cabinet", "arrow_double_up", "+1"];
const COLORS = ["#e8912d", "#2bac76", "#1264a3", "#e01e5a", "#36c5f0"];

const page = {
  me: new URLSearchParams(location.search).get("user") || localStorage.getItem("playground-user") || "U0ALICE",
  view: null, channel: "C0GENERAL", thread: null, home: false, homeTab: "home", socket: null,
};
const composers = {
  main: { form: document.getElementById("composer"), files: [], editing: null },
  thread: { form: document.getElementById("thread-composer"), files: [], editing: null },
};
const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "html") node.innerHTML = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== null && value !== undefined && value !== false) node.setAttribute(key, value);
  }
  for (const child of children.flat()) if (child !== null && child !== undefined) node.append(child);
  return node;
}

// --- talking to the server -------------------------------------------------------------------

function connect() {
  const url = `${location.origin.replace(/^http/, "ws")}/api/live?user=${encodeURIComponent(page.me)}`;
  const socket = new WebSocket(url);
  page.socket = socket;
  socket.onmessage = (event) => { page.view = JSON.parse(event.data); render(); };
  socket.onclose = () => { if (page.socket === socket) setTimeout(connect, 1000); };
}

async function act(name, body) {
  const response = await fetch(`/api/${name}`, {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ user: page.me, ...body }),
  });
  if (!response.ok) {
    const answer = await response.json().catch(() => ({}));
    toast(answer.error || `the playground refused that (${response.status})`);
    return false;
  }
  return true;
}

function toast(text) {
  const box = $("toast");
  box.textContent = text;
  box.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { box.hidden = true; }, 5000);
}

// --- Slack's text formats ----------------------------------------------------------------------

function escapeHtml(text) {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

function personName(id) {
  const person = (page.view?.people || []).find((p) => p.id === id);
  return person ? person.name : id;
}

function emoji(text) {
  return text.replace(/:([a-z0-9_+-]+):/g, (whole, name) => EMOJI[name] || whole);
}

// Slack's mrkdwn (markdown=false) or the standard Markdown of markdown blocks and markdown_text.
function format(text, markdown) {
  const kept = [];
  const keep = (html) => `\u0000${kept.push(html) - 1}\u0000`;
  let out = text.replace(/```(?:[\w+-]*\n)?([\s\S]*?)```/g, (_, code) => keep(`<pre><code>${escapeHtml(code.replace(/\n$/, ""))}</code></pre>`));
  out = out.replace(/`([^`\n]+)`/g, (_, code) => keep(`<code>${escapeHtml(code)}</code>`));
  out = out.replace(/<@([UW][A-Z0-9]+)(?:\|[^>]*)?>/g, (_, id) => keep(`<span class="mention${id === page.me ? " me" : ""}">@${escapeHtml(personName(id))}</span>`));
  out = out.replace(/<!(here|channel|everyone)(?:\|[^>]*)?>/g, (_, name) => keep(`<span class="mention">@${name}</span>`));
  out = out.replace(/<#(C[A-Z0-9]+)(?:\|([^>]*))?>/g, (_, id, name) => keep(`<span class="mention">#${escapeHtml(name || id)}</span>`));
  out = out.replace(/<((?:https?|mailto):[^|>]+)(?:\|([^>]*))?>/g, (_, url, label) => keep(link(url, label || url)));
  out = out.replace(/\[([^\]]+)\]\(((?:https?|mailto):[^)\s]+)\)/g, (_, label, url) => keep(link(url, label)));
  out = escapeHtml(out.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&"));
  out = out.replace(/\*\*([^*\n]+)\*\*/g, "<b>$1</b>");
  out = out.replace(/(^|[\s(])\*([^*\n]+)\*/g, markdown ? "$1<i>$2</i>" : "$1<b>$2</b>");
  out = out.replace(/(^|[\s(])_([^_\n]+)_/g, "$1<i>$2</i>");
  out = out.replace(/~~?([^~\n]+)~~?/g, "<s>$1</s>");
  out = emoji(out);
  const html = [];
  let list = false;
  for (const line of out.split("\n")) {
    const item = line.match(/^\s*(?:[-•*]|\d+\.)\s+(.*)$/);
    if (item && !list) { html.push("<ul>"); list = true; }
    if (!item && list) { html.push("</ul>"); list = false; }
    if (item) html.push(`<li>${item[1]}</li>`);
    else if (/^&gt;\s?/.test(line)) html.push(`<blockquote>${line.replace(/^&gt;\s?/, "")}</blockquote>`);
    else if (markdown && /^#{1,6}\s/.test(line)) html.push(`<h4>${line.replace(/^#+\s/, "")}</h4>`);
    else html.push(line === "" ? "<p></p>" : `<p>${line}</p>`);
  }
  if (list) html.push("</ul>");
  return html.join("").replace(/\u0000(\d+)\u0000/g, (_, n) => kept[Number(n)]);
}

function link(url, label) {
  return `<a href="${escapeHtml(url)}" target="_blank" rel="noopener">${escapeHtml(label)}</a>`;
}

function textObject(object) {
  if (!object) return "";
  return object.type === "mrkdwn" ? format(object.text, false) : escapeHtml(emoji(object.text || ""));
}

function richText(block) {
  const inline = (e) => {
    if (e.type === "user") return `<span class="mention">@${escapeHtml(personName(e.user_id))}</span>`;
    if (e.type === "channel") return `<span class="mention">#${escapeHtml(e.channel_id)}</span>`;
    if (e.type === "link") return link(e.url, e.text || e.url);
    if (e.type === "emoji") return EMOJI[e.name] || `:${e.name}:`;
    const text = escapeHtml(e.text || "").replace(/\n/g, "<br>");
    return e.style?.bold ? `<b>${text}</b>` : e.style?.code ? `<code>${text}</code>` : text;
  };
  return (block.elements || []).map((part) => {
    const inner = (part.elements || []).map((e) => (e.elements ? richText({ elements: [e] }) : inline(e))).join("");
    if (part.type === "rich_text_preformatted") return `<pre>${inner}</pre>`;
    if (part.type === "rich_text_quote") return `<blockquote>${inner}</blockquote>`;
    if (part.type === "rich_text_list") return `<ul>${(part.elements || []).map((s) => `<li>${richText({ elements: [s] })}</li>`).join("")}</ul>`;
    return inner;
  }).join("");
}

// --- Block Kit ---------------------------------------------------------------------------------

function button(element, onClick) {
  const classes = `block-button${element.style ? ` ${element.style}` : ""}`;
  const label = emoji(element.text?.text || element.action_id);
  if (element.url) {
    return el("a", { class: classes, href: element.url, target: "_blank", rel: "noopener", onclick: onClick }, label);
  }
  return el("button", { type: "button", class: classes, onclick: onClick }, label);
}

// ``click(element, block)`` presses a button: on a message, or on the Home tab.
function blocks(list, click) {
  return list.map((block) => {
    switch (block.type) {
      case "markdown": return el("div", { html: format(block.text || "", true) });
      case "rich_text": return el("div", { html: richText(block) });
      case "header": return el("h4", {}, block.text?.text || "");
      case "divider": return el("hr");
      case "section": {
        const fields = (block.fields || []).map((f) => el("div", { html: textObject(f) }));
        const accessory = block.accessory?.type === "button" ? button(block.accessory, () => click(block.accessory, block)) : null;
        return el("div", { class: "section" }, el("div", { html: textObject(block.text) }), fields, accessory);
      }
      case "context": return el("div", { class: "context", html: (block.elements || []).map(textObject).join(" ") });
      case "actions": return el("div", { class: "actions" },
        (block.elements || []).filter((e) => e.type === "button").map((e) => button(e, () => click(e, block))));
      case "table": return el("table", { class: "block-table" }, (block.rows || []).map((row) =>
        el("tr", {}, row.map((cell) => el("td", { html: cell.type === "rich_text" ? richText(cell) : escapeHtml(cell.text || "") })))));
      case "image": return el("img", { src: block.image_url, alt: block.alt_text || "" });
      default: return el("div", { class: "context" }, `[a ${block.type} block]`);
    }
  });
}

// --- messages ----------------------------------------------------------------------------------

function time(ts) {
  return new Date(parseFloat(ts) * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function avatar(message) {
  if (message.bot) return el("div", { class: "avatar", style: "background:#4a154b" }, "CA");
  const name = message.author || "?";
  const color = COLORS[[...name].reduce((sum, c) => sum + c.charCodeAt(0), 0) % COLORS.length];
  return el("div", { class: "avatar", style: `background:${color}` }, name[0].toUpperCase());
}

function messageContent(m) {
  const userTyped = !m.bot && m.blocks.every((b) => b.type === "rich_text");
  if (m.blocks.length && !userTyped) return blocks(m.blocks, (element) => act("click", {
    channel: page.channel, ts: m.ts, action_id: element.action_id, value: element.value ?? null,
  }));
  return m.text ? [el("div", { html: format(m.text, m.markdown) })] : [];
}

function messageEl(m, inThread) {
  const mine = m.user === page.me && !m.bot;
  const tools = el("div", { class: "msg-tools" },
    QUICK_REACTIONS.map((name) => el("button", { type: "button", title: `:${name}:`, "data-reaction": name,
      onclick: () => act("react", { channel: page.channel, ts: m.ts, name }) }, EMOJI[name])),
    inThread ? null : el("button", { type: "button", title: "Reply in thread", onclick: () => openThread(m.ts) }, "💬"),
    mine ? el("button", { type: "button", title: "Edit message", onclick: () => startEdit(inThread ? "thread" : "main", m) }, "✏️") : null,
    mine ? el("button", { type: "button", title: "Delete message", onclick: () => {
      if (confirm("Delete this message?")) act("delete", { channel: page.channel, ts: m.ts });
    } }, "🗑️") : null);
  const files = m.files.map((f) => f.mimetype.startsWith("image/")
    ? el("img", { src: `/files/${f.id}`, alt: f.name, title: f.name })
    : el("a", { class: "file-chip", href: `/files/${f.id}`, target: "_blank" }, `📄 ${f.name}`));
  const chunks = m.chunks.length ? el("ul", { class: "chunks" }, m.chunks.map((c) =>
    el("li", {}, `${c.status === "complete" ? "✓" : c.status === "error" ? "✗" : "…"} ${c.title || c.type}`))) : null;
  const reactions = m.reactions.length ? el("div", { class: "reactions" }, m.reactions.map((r) =>
    el("button", { type: "button", class: `reaction${r.mine ? " mine" : ""}`, title: `:${r.name}:`,
      onclick: () => act("react", { channel: page.channel, ts: m.ts, name: r.name }) }, `${EMOJI[r.name] || `:${r.name}:`} ${r.count}`))) : null;
  const replies = !inThread && m.replies ? el("button", { type: "button", class: "replies-link",
    onclick: () => openThread(m.ts) }, `${m.replies} ${m.replies === 1 ? "reply" : "replies"}`) : null;
  return el("div", { class: `msg${m.subtype === "tombstone" ? " tombstone" : ""}`, "data-key": m.ts },
    avatar(m),
    el("div", { class: "msg-body" },
      el("div", { class: "msg-head" }, el("span", { class: "author" }, m.author), m.bot ? el("span", { class: "badge" }, "APP") : null,
        el("span", { class: "time" }, time(m.ts)), m.edited ? el("span", { class: "edited" }, "(edited)") : null),
      el("div", { class: "content" }, messageContent(m), files, chunks,
        m.streaming ? el("div", { class: "streaming" }, "✍️ streaming…") : null),
      reactions, replies),
    m.subtype === "tombstone" ? null : tools);
}

function ephemeralEl(e) {
  return el("div", { class: "msg ephemeral", "data-key": `ephemeral:${e.ts}` },
    el("div", { class: "avatar", style: "background:#4a154b" }, "CA"),
    el("div", { class: "msg-body" },
      el("div", { class: "msg-head" }, el("span", { class: "author" }, "Coder Agents"), el("span", { class: "badge" }, "APP"),
        el("span", { class: "time" }, time(e.ts))),
      el("div", { class: "only-you" }, "👁 Only visible to you"),
      el("div", { class: "content" }, e.blocks.length ? blocks(e.blocks, () => {}) : el("div", { html: format(e.text, true) }))));
}

// Show ``nodes`` in ``list``, keeping every message that did not change as it is, so a push never
// disturbs what the person points at, selects or hovers; new ones follow if the list was at its end.
function fill(list, nodes) {
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  const shown = new Map([...list.children].map((node) => [node.dataset.key, node]));
  const wanted = nodes.map((node) => {
    const before = shown.get(node.dataset.key);
    return before && before.outerHTML === node.outerHTML ? before : node;
  });
  wanted.forEach((node, i) => {
    if (list.children[i] !== node) list.insertBefore(node, list.children[i] || null);
  });
  while (list.children.length > wanted.length) list.lastElementChild.remove();
  if (atBottom) list.scrollTop = list.scrollHeight;
}

// --- the page ----------------------------------------------------------------------------------

function render() {
  const view = page.view;
  if (!view) return;
  const channels = view.channels.filter((c) => c.kind !== "im");
  const dm = view.channels.find((c) => c.kind === "im");
  if (!view.channels.some((c) => c.id === page.channel)) page.channel = channels[0]?.id;
  $("channel-list").replaceChildren(...channels.map((c) => el("li", {}, el("button", {
    class: `nav-item${!page.home && c.id === page.channel ? " active" : ""}`,
    onclick: () => { page.home = false; page.channel = c.id; page.thread = null; render(); },
  }, `# ${c.name}`))));
  $("app-home-link").classList.toggle("active", page.home);
  renderPanel(view);
  const inMessages = !page.home || page.homeTab === "messages";
  if (page.home && page.homeTab === "messages" && dm) page.channel = dm.id;
  const channel = view.channels.find((c) => c.id === page.channel);
  $("main-header").textContent = page.home ? "Coder Agents" : `# ${channel?.name || ""}`;
  $("home-tabs").hidden = !page.home;
  for (const tab of document.querySelectorAll("#home-tabs .tab")) tab.classList.toggle("active", tab.dataset.tab === page.homeTab);
  $("home").hidden = inMessages;
  $("messages").hidden = !inMessages;
  composers.main.form.hidden = !inMessages;
  if (!inMessages) renderHome(view);
  const messages = view.messages[page.channel] || [];
  const whispers = view.ephemerals.filter((e) => e.channel === page.channel);
  fill($("messages"), [
    ...messages.filter((m) => !m.thread_ts || m.thread_ts === m.ts).map((m) => messageEl(m, false)),
    // A private answer in a thread that is not open shows here, so that none goes unseen.
    ...whispers.filter((e) => !e.thread_ts || e.thread_ts !== shownThread(messages)).map(ephemeralEl),
  ]);
  composers.main.form.querySelector("textarea").placeholder = channel?.kind === "im"
    ? "Message Coder Agents" : `Message #${channel?.name || ""} — mention @coder-agents to start a chat`;
  renderThread(view, messages, whispers);
  renderModal(view);
}

function renderPanel(view) {
  const people = view.people.filter((p) => p.id !== view.bot_user_id);
  const person = $("person");
  if (person.options.length !== people.length) {
    person.replaceChildren(...people.map((p) => el("option", { value: p.id }, `${p.real_name} (@${p.name})`)));
  }
  person.value = page.me;
  const agent = $("agent");
  if (agent.options.length !== view.agents.length) agent.replaceChildren(...view.agents.map((a) => el("option", { value: a }, a)));
  agent.value = view.agent;
  $("pull-request").disabled = !page.thread;
  $("chat-list").replaceChildren(...view.chats.map((c) => el("li", {}, c.title,
    el("span", { class: "meta" }, `${c.status}${c.queued ? ` · ${c.queued} queued` : ""}`,
      c.pull_request ? el("span", {}, " · ", el("a", { href: c.pull_request, target: "_blank" }, "PR")) : null))));
}

function renderHome(view) {
  const home = view.home;
  $("home").replaceChildren(...(home ? blocks(home.blocks || [], (element, block) =>
    act("click_home", { action_id: element.action_id, block_id: block.block_id || null })) : [el("p", {}, "Loading the Home tab…")]));
}

// The thread shown in the side pane, if one is open and still there.
function shownThread(messages) {
  const shown = !(page.home && page.homeTab === "home") && messages.some((m) => m.ts === page.thread);
  return shown ? page.thread : null;
}

function renderThread(view, messages, whispers) {
  const pane = $("thread");
  pane.hidden = !shownThread(messages);
  if (pane.hidden) return;
  const inThread = messages.filter((m) => m.ts === page.thread || m.thread_ts === page.thread);
  fill($("thread-messages"), [
    ...inThread.map((m) => messageEl(m, true)),
    ...whispers.filter((e) => e.thread_ts === page.thread).map(ephemeralEl),
  ]);
  const key = `${page.channel}:${page.thread}`;
  const session = view.sessions[key];
  $("session").textContent = session ? `Agent session · ${session.status}${session.title ? ` · ${session.title}` : ""}` : "";
  $("thread-status").textContent = view.status[key] ? `Coder Agents ${view.status[key]}` : "";
}

function renderModal(view) {
  const modal = $("modal");
  const open = view.modal;
  modal.hidden = !open;
  if (!open) { delete modal.dataset.view; return; }
  const errors = view.modal_errors || {};
  const signature = JSON.stringify([open, errors]);
  if (modal.dataset.view === signature) return;  // keep what the person typed
  modal.dataset.view = signature;
  const inputs = (open.blocks || []).map((block) => {
    if (block.type !== "input") return blocks([block], () => {});
    return el("label", {}, el("b", {}, block.label?.text || ""),
      el("input", { "data-block": block.block_id, "data-action": block.element?.action_id,
        placeholder: block.element?.placeholder?.text || "" }),
      errors[block.block_id] ? el("div", { class: "error" }, errors[block.block_id]) : null);
  }).flat();
  modal.querySelector(".dialog").replaceChildren(
    el("h2", {}, open.title?.text || ""), ...inputs,
    el("div", { class: "buttons" },
      el("button", { type: "button", class: "block-button", onclick: () => act("close_view", {}) }, open.close?.text || "Close"),
      open.submit ? el("button", { type: "button", class: "block-button primary", onclick: () => {
        const values = {};
        for (const input of modal.querySelectorAll("input[data-block]")) {
          values[input.dataset.block] = { [input.dataset.action]: input.value };
        }
        act("submit_view", { values });
      } }, open.submit.text) : null));
}

function openThread(ts) {
  page.thread = ts;
  render();
  composers.thread.form.querySelector("textarea").focus();
}

// --- composing -----------------------------------------------------------------------------------

// A Slack client turns a picked "@name" into the mention's code; the page does it for typed names.
function encodeMentions(text) {
  const people = page.view.people;
  return text.replace(/@([\w.-]+)/g, (whole, name) => {
    const person = people.find((p) => p.name.toLowerCase() === name.toLowerCase());
    return person ? `<@${person.id}>` : whole;
  });
}

function decodeMentions(text) {
  return text.replace(/<@([UW][A-Z0-9]+)>/g, (_, id) => `@${personName(id)}`);
}

function startEdit(which, message) {
  const composer = composers[which];
  composer.editing = message.ts;
  composer.form.querySelector(".editing").hidden = false;
  const box = composer.form.querySelector("textarea");
  box.value = decodeMentions(message.text);
  box.focus();
}

function stopEdit(composer) {
  composer.editing = null;
  composer.form.querySelector(".editing").hidden = true;
}

function drawAttachments(composer) {
  composer.form.querySelector(".attachments").replaceChildren(...composer.files.map((f) =>
    el("span", { class: "file-chip" }, `📎 ${f.name}`, el("button", { type: "button", title: "Remove",
      onclick: () => { composer.files = composer.files.filter((g) => g !== f); drawAttachments(composer); } }, "✕"))));
}

async function submit(which) {
  const composer = composers[which];
  const box = composer.form.querySelector("textarea");
  const text = encodeMentions(box.value.trim());
  const thread = which === "thread" ? page.thread : null;
  let done;
  if (composer.editing) done = await act("edit", { channel: page.channel, ts: composer.editing, text });
  else done = await act("say", { channel: page.channel, text, thread_ts: thread, files: composer.files.map((f) => f.id) });
  if (!done) return;
  box.value = "";
  composer.files = [];
  drawAttachments(composer);
  stopEdit(composer);
}

for (const [which, composer] of Object.entries(composers)) {
  const box = composer.form.querySelector("textarea");
  composer.form.addEventListener("submit", (event) => { event.preventDefault(); submit(which); });
  box.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); submit(which); }
  });
  composer.form.querySelector(".cancel-edit").addEventListener("click", () => { box.value = ""; stopEdit(composer); });
  composer.form.querySelector("input[type=file]").addEventListener("change", async (event) => {
    for (const file of event.target.files) {
      const form = new FormData();
      form.append("user", page.me);
      form.append("file", file);
      const response = await fetch("/api/upload", { method: "POST", body: form });
      const answer = await response.json().catch(() => ({}));
      if (response.ok) composer.files.push(answer);
      else toast(answer.error || "the file could not be attached");
    }
    event.target.value = "";
    drawAttachments(composer);
  });
}

$("close-thread").addEventListener("click", () => { page.thread = null; render(); });
$("app-home-link").addEventListener("click", () => {
  page.home = true;
  page.homeTab = "home";
  page.thread = null;
  act("home", {});
  render();
});
for (const tab of document.querySelectorAll("#home-tabs .tab")) {
  tab.addEventListener("click", () => { page.homeTab = tab.dataset.tab; page.thread = null; render(); });
}
$("person").addEventListener("change", (event) => {
  page.me = event.target.value;
  localStorage.setItem("playground-user", page.me);
  const old = page.socket;
  connect();
  old.close();
});
$("agent").addEventListener("change", (event) => act("agent", { agent: event.target.value }));
$("pull-request").addEventListener("click", () => act("pull_request", { thread_ts: page.thread }));

connect();
