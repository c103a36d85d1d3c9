// rag-kb web page: plain JS over the public API. Every value from the server or a document is
// written with textContent, never as HTML: a document cannot inject markup into the page.
"use strict";

const KEY_STORAGE = "rag-kb.api-key";
const $ = (id) => document.getElementById(id);

// -- API -------------------------------------------------------------------------------------
function headers(extra = {}) {
  const key = sessionStorage.getItem(KEY_STORAGE);
  return key ? { ...extra, Authorization: `Bearer ${key}` } : extra;
}

async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: headers(body === undefined ? {} : { "Content-Type": "application/json" }),
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(errorText(response.status, data));
  return data;
}

function errorText(status, data) {
  const error = data && data.error;
  return error ? `${error.message} (${error.code}, HTTP ${status})` : `HTTP ${status}`;
}

// -- small DOM helpers -------------------------------------------------------------------------
function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "text") node.textContent = value;
    else node.setAttribute(name, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function banner(id, kind, text) {
  const node = $(id);
  node.className = `banner ${kind}`;
  node.textContent = text;
  node.hidden = !text;
}

// -- pages -----------------------------------------------------------------------------------
const PAGES = ["ask", "rerank", "documents", "insights"];

function showPage() {
  const wanted = location.hash.slice(1);
  const page = PAGES.includes(wanted) ? wanted : "ask";
  for (const name of PAGES) {
    $(`page-${name}`).hidden = name !== page;
    const link = document.querySelector(`nav a[data-page="${name}"]`);
    if (name === page) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (page === "documents") loadDocuments();
  if (page === "insights") loadInsights();
}

// -- API key ---------------------------------------------------------------------------------
function showKeyState() {
  $("key-state").textContent = sessionStorage.getItem(KEY_STORAGE) ? "key in use (this tab only)" : "no key";
}

$("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const key = $("api-key").value.trim();
  if (key) sessionStorage.setItem(KEY_STORAGE, key);
  $("api-key").value = "";
  showKeyState();
  loadCollections();
  checkHealth();
});
$("key-forget").addEventListener("click", () => {
  sessionStorage.removeItem(KEY_STORAGE);
  showKeyState();
});

// -- self-checks -----------------------------------------------------------------------------
// A failed self-check (a reranker reading its template twice, an embedder of the wrong dimension)
// makes every answer worse without failing any request: say so on every page.
async function checkHealth(attempt = 0) {
  const response = await fetch("/readyz", { headers: headers() }).catch(() => null);
  if (!response || response.status === 401 || response.status === 403) return;
  const data = await response.json().catch(() => ({}));
  // null: the server is still running its checks (they start with it, in the background).
  if (data.selfcheck === null && attempt < 20) setTimeout(() => checkHealth(attempt + 1), 3000);
  const failed = (data.selfcheck || []).filter((check) => check.status === "failed");
  const text = failed.map((check) => `${check.name}: ${check.message}`).join("; ");
  banner("health-banner", "error", text ? `Self-check failed: ${text}` : "");
}

// -- collections -----------------------------------------------------------------------------
async function loadCollections(selected) {
  let names = [];
  try {
    names = (await api("GET", "/v1/collections")).collections.map((c) => c.name);
  } catch (error) {
    banner("ask-banner", "error", `Cannot list collections: ${error.message}`);
  }
  for (const select of document.querySelectorAll("select.collections")) {
    const keep = selected || select.value;
    select.replaceChildren(...names.map((name) => el("option", { value: name, text: name })));
    if (names.includes(keep)) select.value = keep;
  }
}

// -- Ask -------------------------------------------------------------------------------------
let citations = [];

async function* serverSentEvents(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
      }
      if (data.length) yield { name, data: JSON.parse(data.join("\n")) };
    }
  }
}

function renderAnswerText(text) {
  // "[2]" becomes a button that opens the cited passage; the rest stays plain text.
  const answer = $("answer");
  answer.replaceChildren();
  let last = 0;
  for (const match of text.matchAll(/\[(\d+)\]/g)) {
    answer.append(text.slice(last, match.index));
    const n = Number(match[1]);
    const known = citations.some((c) => c.n === n);
    answer.append(
      known
        ? el("button", { type: "button", class: "cite", "aria-label": `source ${n}`, onclick: () => showCitation(n), text: `[${n}]` })
        : match[0],
    );
    last = match.index + match[0].length;
  }
  answer.append(text.slice(last));
}

function showCitation(n) {
  const c = citations.find((item) => item.n === n);
  if (!c) return;
  const detail = $("citation-detail");
  const score = c.rerank_score === null ? "not reranked" : `rerank score ${c.rerank_score.toFixed(3)}`;
  detail.replaceChildren(
    el("h3", { text: `[${c.n}] ${c.file}${c.page ? `, page ${c.page}` : ""}` }),
    el("p", { class: "muted", text: `${c.heading || "(no heading)"} · ${score} · recall rank ${c.recall_rank}` }),
    el("blockquote", { text: c.text }),
    el("button", { type: "button", id: "open-source", onclick: () => openSource(c), text: "Open the source" }),
    el("button", { type: "button", onclick: () => { detail.hidden = true; }, text: "Close" }),
  );
  detail.hidden = false;
  detail.focus();
}

function renderCitations(answer) {
  citations = answer.citations || [];
  $("citations").replaceChildren(
    ...citations.map((c) =>
      el(
        "li",
        { class: c.cited ? "cited" : "" },
        el("button", {
          type: "button",
          class: "cite",
          onclick: () => showCitation(c.n),
          text: `[${c.n}] ${c.file}${c.page ? ` p. ${c.page}` : ""}`,
        }),
        el("span", { class: "muted", text: ` ${c.snippet || ""}` }),
      ),
    ),
  );
  showFeedback(answer);
  const timings = Object.entries(answer.timings || {}).map(([stage, s]) => `${stage} ${(s * 1000).toFixed(0)} ms`);
  $("ask-timings").textContent = timings.join(" · ");
  if (answer.degraded && answer.degraded.length) {
    banner("ask-banner", "warn", `Degraded (${answer.degraded.join(", ")}): ${(answer.notes || []).join("; ")}`);
  } else if (!answer.found) {
    banner("ask-banner", "info", `Not found in the knowledge base. ${(answer.notes || []).join("; ")}`);
  } else if (answer.notes && answer.notes.length) {
    banner("ask-banner", "info", answer.notes.join("; "));
  }
}

// -- the conversation ---------------------------------------------------------------------------
// Each question is asked with the turns before it (`history`), so a follow-up ("and if it fails
// everywhere?") is searched about the right subject. A conversation keeps its collection, recall
// mode and instruction: those controls are locked until "New conversation". Kept in this tab only.
const CONVERSATION_STORAGE = "rag-kb.conversation";
let conversation = loadConversation();

function loadConversation() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(CONVERSATION_STORAGE));
    if (saved && Array.isArray(saved.turns)) return saved;
  } catch { /* nothing usable saved: start afresh */ }
  return { collection: null, mode: "", instruction: "", turns: [] };
}

function saveConversation() {
  sessionStorage.setItem(CONVERSATION_STORAGE, JSON.stringify(conversation));
}

function historyOf(turns) {
  return turns.flatMap((t) => [{ role: "user", content: t.question }, { role: "assistant", content: t.answer }]);
}

function turnItem(turn) {
  const sources = (turn.citations || []).map((c) => `[${c.n}] ${c.file}${c.page ? ` p. ${c.page}` : ""}`);
  const item = el(
    "li",
    { class: "turn" },
    el("p", { class: "question", text: turn.question }),
    el("p", { class: "answer", text: turn.answer }),
    el("p", { class: "muted sources", text: sources.join(" · ") }),
  );
  if (turn.answerId) item.append(turnFeedback(turn));
  return item;
}

// An earlier answer of the conversation can be rated too (without a comment).
function turnFeedback(turn) {
  const state = el("span", { class: "muted", role: "status", text: turn.rating ? `rated: ${turn.rating === "up" ? "Yes" : "No"}` : "" });
  const rate = (rating) => async () => {
    try {
      await api("POST", "/v1/feedback", { answer_id: turn.answerId, rating });
      turn.rating = rating;
      saveConversation();
      state.textContent = `rated: ${rating === "up" ? "Yes" : "No"}`;
    } catch (error) {
      state.textContent = `Not recorded: ${error.message}`;
    }
  };
  return el(
    "p",
    { class: "row turn-feedback" },
    el("span", { class: "muted", text: "Helped?" }),
    el("button", { type: "button", class: "small", onclick: rate("up"), text: "Yes" }),
    el("button", { type: "button", class: "small", onclick: rate("down"), text: "No" }),
    state,
  );
}

// The thread holds the turns before the one shown below the form (all of them after a reload).
function renderConversation({ lastShownBelow = true } = {}) {
  const earlier = lastShownBelow ? conversation.turns.slice(0, -1) : conversation.turns;
  $("thread").replaceChildren(...earlier.map(turnItem));
  const locked = conversation.turns.length > 0;
  for (const id of ["ask-collection", "ask-mode", "ask-instruction"]) $(id).disabled = locked;
  if (locked) {
    $("ask-collection").value = conversation.collection || "";
    $("ask-mode").value = conversation.mode;
    $("ask-instruction").value = conversation.instruction;
  }
  $("conversation-state").textContent = locked
    ? `${conversation.turns.length} question(s) in this conversation; follow-ups use them`
    : "Ctrl+Enter in the question asks too";
}

function newConversation() {
  conversation = { collection: null, mode: "", instruction: "", turns: [] };
  saveConversation();
  citations = [];
  banner("ask-banner", "", "");
  for (const id of ["answer", "ask-timings"]) $(id).textContent = "";
  $("citations").replaceChildren();
  $("current-question").hidden = $("ask-query").hidden = $("citation-detail").hidden = $("feedback").hidden = true;
  renderConversation();
}

function showCurrent(turn) {
  $("current-question").textContent = turn.question;
  $("current-question").hidden = false;
  const rewritten = turn.query && turn.query !== turn.question;
  $("ask-query").textContent = rewritten ? `Searched: ${turn.query.replace(/\s+/g, " ")}` : "";
  $("ask-query").hidden = !rewritten;
}

async function ask(event) {
  event.preventDefault();
  const button = $("ask-submit");
  button.disabled = true;
  citations = [];
  banner("ask-banner", "", "");
  $("answer").textContent = "";
  $("citations").replaceChildren();
  $("ask-timings").textContent = "";
  $("citation-detail").hidden = true;
  $("feedback").hidden = true;
  if (!conversation.turns.length) {
    conversation.collection = $("ask-collection").value || null;
    conversation.mode = $("ask-mode").value;
    conversation.instruction = $("ask-instruction").value.trim();
  }
  const question = $("ask-question").value;
  $("thread").replaceChildren(...conversation.turns.map(turnItem));
  showCurrent({ question });
  const body = { question, collection: conversation.collection, history: historyOf(conversation.turns), stream: true };
  if (conversation.instruction) body.instruction = conversation.instruction;
  if (conversation.mode) body.recall_mode = conversation.mode;
  try {
    const response = await fetch("/v1/ask", {
      method: "POST",
      headers: headers({ "Content-Type": "application/json", Accept: "text/event-stream" }),
      body: JSON.stringify(body),
    });
    if (!response.ok) throw new Error(errorText(response.status, await response.json().catch(() => ({}))));
    let text = "";
    for await (const event of serverSentEvents(response)) {
      if (event.name === "delta") {
        text += event.data.text;
        $("answer").textContent = text;
      } else if (event.name === "answer") {
        renderCitations(event.data);
        renderAnswerText(event.data.answer);
        const turn = {
          question,
          answer: event.data.answer,
          query: event.data.query,
          citations: event.data.citations,
          answerId: event.data.logged ? event.data.answer_id : null,
        };
        conversation.turns.push(turn);
        saveConversation();
        renderConversation();
        showCurrent(turn);
        $("ask-question").value = "";
      } else if (event.name === "error") {
        throw new Error(errorText(503, event.data));
      }
    }
  } catch (error) {
    banner("ask-banner", "error", error.message);
  } finally {
    button.disabled = false;
  }
}

$("ask-form").addEventListener("submit", ask);
$("new-conversation").addEventListener("click", newConversation);
$("ask-question").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) $("ask-form").requestSubmit();
});

// -- the source viewer: the cited page with the passage marked, or the section of a text file --------
// Images and downloads are fetched with the key and shown from blob: URLs (a plain link could not
// send the Authorization header).
const viewer = { citation: null, collection: null, page: 1, pages: 0, urls: [] };

function documentPath(suffix) {
  const c = viewer.citation;
  return `/v1/collections/${encodeURIComponent(viewer.collection)}/documents/${encodeURIComponent(c.doc_id)}${suffix}`;
}

async function fetchBlob(path) {
  const response = await fetch(path, { headers: headers() });
  if (!response.ok) throw new Error(errorText(response.status, await response.json().catch(() => ({}))));
  const url = URL.createObjectURL(await response.blob());
  viewer.urls.push(url);
  return url;
}

async function openSource(c) {
  viewer.citation = c;
  viewer.collection = conversation.collection || $("ask-collection").value || "default";
  viewer.page = c.page || 1;
  $("source-title").textContent = c.file;
  $("source-state").textContent = "";
  $("source-viewer").showModal();
  const paged = Boolean(c.page) && /\.pdf$/i.test(c.file);
  for (const id of ["source-prev", "source-next", "source-page-label"]) $(id).hidden = !paged;
  $("source-page").hidden = !paged;
  $("source-section").hidden = paged;
  try {
    if (paged) {
      const listed = await api("GET", `/v1/collections/${encodeURIComponent(viewer.collection)}/documents`);
      const doc = listed.documents.find((d) => d.doc_id === c.doc_id);
      viewer.pages = doc ? doc.pages : 0;
      await showSourcePage();
    } else {
      await showSection();
    }
  } catch (error) {
    $("source-state").textContent = error.message;
  }
}

async function showSourcePage() {
  const c = viewer.citation;
  $("source-page-label").textContent = `page ${viewer.page} of ${viewer.pages || "?"}`;
  $("source-prev").disabled = viewer.page <= 1;
  $("source-next").disabled = Boolean(viewer.pages) && viewer.page >= viewer.pages;
  $("source-marks").replaceChildren();
  const image = $("source-image");
  const loaded = new Promise((resolve) => { image.onload = resolve; });
  image.src = await fetchBlob(documentPath(`/pages/${viewer.page}?width=1000`));
  image.alt = `${c.file}, page ${viewer.page}`;
  await loaded;
  const cited = (c.pages && c.pages.length ? c.pages : [c.page]).includes(viewer.page);
  if (!cited) {
    $("source-state").textContent = "The cited passage is not on this page.";
    return;
  }
  const marks = await api("GET", documentPath(`/pages/${viewer.page}/highlights?chunk_id=${encodeURIComponent(c.chunk_id)}`));
  const pct = (value, whole) => `${((value / whole) * 100).toFixed(3)}%`;
  // Positioned through the CSSOM: the Content-Security-Policy refuses style attributes.
  $("source-marks").replaceChildren(
    ...marks.rects.map(([x0, y0, x1, y1]) => {
      const mark = el("div", { class: "mark" });
      Object.assign(mark.style, {
        left: pct(x0, marks.page_width),
        top: pct(y0, marks.page_height),
        width: pct(x1 - x0, marks.page_width),
        height: pct(y1 - y0, marks.page_height),
      });
      return mark;
    }),
  );
  if (marks.rects.length) $("source-marks").firstChild.scrollIntoView({ block: "center" });
  $("source-state").textContent = marks.rects.length
    ? `The cited passage is marked (${Math.round(marks.matched * 100)}% of its text found on this page).`
    : "The cited passage could not be found on this page's text.";
}

async function showSection() {
  const c = viewer.citation;
  const found = await api("GET", documentPath(`/section?chunk_id=${encodeURIComponent(c.chunk_id)}`));
  const section = $("source-section");
  const heading = el("p", { class: "muted", text: found.heading || "(no heading)" });
  if (!found.highlight) {
    section.replaceChildren(heading, el("p", { class: "section-text", text: found.text }));
    $("source-state").textContent = "The cited passage could not be found in this section.";
    return;
  }
  const [start, end] = found.highlight;
  const mark = el("mark", { text: found.text.slice(start, end) });
  section.replaceChildren(heading, el("p", { class: "section-text" }, found.text.slice(0, start), mark, found.text.slice(end)));
  mark.scrollIntoView({ block: "center" });
  $("source-state").textContent = "The cited passage is marked.";
}

async function downloadSource() {
  try {
    const link = el("a", { href: await fetchBlob(documentPath("/file")), download: viewer.citation.file });
    document.body.append(link);
    link.click();
    link.remove();
  } catch (error) {
    $("source-state").textContent = error.message;
  }
}

function closeSource() {
  $("source-viewer").close();
  for (const url of viewer.urls.splice(0)) URL.revokeObjectURL(url);
}

function turnSourcePage(step) {
  viewer.page += step;
  showSourcePage().catch((error) => { $("source-state").textContent = error.message; });
}

$("source-prev").addEventListener("click", () => turnSourcePage(-1));
$("source-next").addEventListener("click", () => turnSourcePage(1));
$("source-download").addEventListener("click", downloadSource);
$("source-close").addEventListener("click", closeSource);

// -- feedback on the answer shown ---------------------------------------------------------------
// A thumb sends the rating at once (with the comment, if one is typed); "Send comment" sends the
// chosen rating again with the comment. The server keeps the latest rating of an answer.
const feedback = { answerId: null, rating: null };

function showFeedback(answer) {
  feedback.answerId = answer.logged ? answer.answer_id : null;
  feedback.rating = null;
  $("feedback").hidden = !feedback.answerId;
  $("feedback-comment").value = "";
  $("feedback-state").textContent = "";
  for (const id of ["feedback-up", "feedback-down"]) $(id).setAttribute("aria-pressed", "false");
}

async function sendFeedback(rating) {
  if (rating) feedback.rating = rating;
  if (!feedback.rating) {
    $("feedback-state").textContent = "Choose Yes or No first.";
    return;
  }
  $("feedback-up").setAttribute("aria-pressed", String(feedback.rating === "up"));
  $("feedback-down").setAttribute("aria-pressed", String(feedback.rating === "down"));
  const body = { answer_id: feedback.answerId, rating: feedback.rating };
  const comment = $("feedback-comment").value.trim();
  if (comment) body.comment = comment;
  try {
    await api("POST", "/v1/feedback", body);
    const turn = conversation.turns.find((t) => t.answerId === feedback.answerId);
    if (turn) {
      turn.rating = feedback.rating;
      saveConversation();
    }
    $("feedback-state").textContent = comment ? "Thank you: rating and comment recorded." : "Thank you: recorded.";
  } catch (error) {
    $("feedback-state").textContent = `Not recorded: ${error.message}`;
  }
}

$("feedback-up").addEventListener("click", () => sendFeedback("up"));
$("feedback-down").addEventListener("click", () => sendFeedback("down"));
$("feedback").addEventListener("submit", (event) => {
  event.preventDefault();
  sendFeedback(null);
});

// -- Insights (the question log) ------------------------------------------------------------------
function percent(share) {
  return share === null || share === undefined ? "–" : `${(share * 100).toFixed(1)}%`;
}

function fillTable(id, rows) {
  $(id).querySelector("tbody").replaceChildren(...rows.map((cells) => el("tr", {}, ...cells.map((c) => el("td", { text: String(c) })))));
}

async function loadInsights(event) {
  if (event) event.preventDefault();
  banner("insights-banner", "", "");
  try {
    const stats = await api("GET", `/v1/stats?days=${encodeURIComponent($("insights-days").value)}`);
    $("insights-summary").textContent =
      `${stats.questions} questions since ${stats.since}: refused ${percent(stats.refusal_rate)}, ` +
      `degraded ${percent(stats.degraded_rate)}, ${stats.rated} rated, voted down ${percent(stats.down_vote_rate)}.`;
    fillTable("insights-per-day", stats.per_day.map((d) => [d.day, d.questions, d.refused, d.degraded, d.up, d.down]));
    fillTable("insights-refused", stats.top_refused.map((q) => [q.count, q.question]));
    fillTable("insights-down", stats.top_down_voted.map((q) => [q.count, q.question]));
  } catch (error) {
    $("insights-summary").textContent = "";
    banner("insights-banner", "error", error.message);
  }
}

$("insights-form").addEventListener("submit", loadInsights);

// -- Rerank playground -----------------------------------------------------------------------
const EXAMPLES = {
  en: {
    query: "How long should a user wait before escalating an unanswered incident page?",
    instruction: "Given an IT support question, find the passage that answers it",
    docs: [
      "After waiting about 15 minutes, the caller should escalate the incident to a higher level.",
      "Printers on the third floor are serviced every Tuesday.",
      "事件响应团队应在收到报告后尽快确认并分级。",
      "Passwords must be at least 12 characters long.",
      "If the on-call handler does not answer, repeat the initial contact, then escalate to the manager.",
    ],
  },
  zh: {
    query: "收集人脸信息属于敏感个人信息吗？",
    instruction: "",
    docs: [
      "敏感个人信息包括生物识别、宗教信仰、特定身份、医疗健康、金融账户、行踪轨迹等信息。",
      "国家建立数据分类分级保护制度。",
      "Biometric data such as face images is sensitive personal information.",
      "网络运营者应当制定网络安全事件应急预案。",
      "本法自2021年11月1日起施行。",
    ],
  },
};

let lastRanking = [];

function loadExample(name) {
  const example = EXAMPLES[name];
  $("rerank-query").value = example.query;
  $("rerank-instruction").value = example.instruction;
  $("rerank-docs").value = example.docs.join("\n");
}

async function rerank(event) {
  event.preventDefault();
  const documents = $("rerank-docs").value.split("\n").map((line) => line.trim()).filter(Boolean);
  const body = { query: $("rerank-query").value, documents, return_documents: true };
  if ($("rerank-instruction").value.trim()) body.instruction = $("rerank-instruction").value.trim();
  $("rerank-submit").disabled = true;
  banner("rerank-banner", "", "");
  try {
    const data = await api("POST", "/v1/rerank", body);
    lastRanking = data.results.map((r, rank) => ({ rank: rank + 1, index: r.index, score: r.relevance_score, text: documents[r.index] }));
    $("rerank-results").replaceChildren(
      ...lastRanking.map((r) =>
        el(
          "li",
          {},
          scoreBar(r.score),
          el("span", { class: "score", text: r.score.toFixed(3) }),
          el("span", { class: "doc", text: r.text }),
        ),
      ),
    );
    $("rerank-csv").disabled = lastRanking.length === 0;
  } catch (error) {
    banner("rerank-banner", "error", error.message);
  } finally {
    $("rerank-submit").disabled = false;
  }
}

function scoreBar(score) {
  const fill = el("span");
  fill.style.width = `${Math.max(0, Math.min(1, score)) * 100}%`; // CSSOM: allowed by the page's CSP
  return el("div", { class: "bar", role: "img", "aria-label": `score ${score.toFixed(3)}` }, fill);
}

function csvField(value) {
  const text = String(value);
  return /[",\n\r]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

function exportCsv() {
  const lines = [["rank", "index", "score", "document"], ...lastRanking.map((r) => [r.rank, r.index, r.score.toFixed(6), r.text])];
  const csv = "\ufeff" + lines.map((row) => row.map(csvField).join(",")).join("\r\n") + "\r\n"; // BOM: Excel reads UTF-8
  const link = el("a", { href: URL.createObjectURL(new Blob([csv], { type: "text/csv;charset=utf-8" })), download: "rerank.csv" });
  document.body.append(link);
  link.click();
  link.remove();
}

$("rerank-form").addEventListener("submit", rerank);
$("example-en").addEventListener("click", () => loadExample("en"));
$("example-zh").addEventListener("click", () => loadExample("zh"));
$("rerank-csv").addEventListener("click", exportCsv);

// -- Documents -------------------------------------------------------------------------------
function docsCollection() {
  return $("docs-new").value.trim() || $("docs-collection").value;
}

async function loadDocuments() {
  const collection = $("docs-collection").value;
  const body = $("documents").querySelector("tbody");
  if (!collection) {
    body.replaceChildren();
    return;
  }
  try {
    const data = await api("GET", `/v1/collections/${encodeURIComponent(collection)}/documents`);
    body.replaceChildren(
      ...data.documents.map((d) =>
        el(
          "tr",
          {},
          el("td", { text: d.file, title: d.title || d.file }),
          el("td", { text: String(d.pages || "-") }),
          el("td", { text: String(d.chunks) }),
          el("td", { text: (d.ingested_at || "").replace("T", " ").replace("+00:00", " UTC") }),
          el("td", {}, el("button", { type: "button", class: "danger", "aria-label": `Delete ${d.file}`, onclick: () => deleteDocument(collection, d), text: "Delete" })),
        ),
      ),
    );
  } catch (error) {
    banner("docs-banner", "error", error.message);
  }
}

async function deleteDocument(collection, doc) {
  if (!confirm(`Delete ${doc.file} from ${collection}?`)) return;
  try {
    await api("DELETE", `/v1/collections/${encodeURIComponent(collection)}/documents/${encodeURIComponent(doc.doc_id)}`);
    banner("docs-banner", "info", `Deleted ${doc.file}.`);
  } catch (error) {
    banner("docs-banner", "error", error.message);
  }
  loadDocuments();
}

function upload(event) {
  event.preventDefault();
  const collection = docsCollection();
  const files = $("upload-files").files;
  if (!collection || !files.length) return;
  const form = new FormData();
  for (const file of files) form.append("files", file, file.name);
  // XMLHttpRequest, not fetch: only it reports upload progress.
  const request = new XMLHttpRequest();
  request.open("POST", `/v1/collections/${encodeURIComponent(collection)}/documents`);
  for (const [name, value] of Object.entries(headers())) request.setRequestHeader(name, value);
  const progress = $("upload-progress");
  progress.hidden = false;
  progress.value = 0;
  $("upload-submit").disabled = true;
  $("upload-state").textContent = `uploading ${files.length} file(s)…`;
  request.upload.onprogress = (e) => {
    if (e.lengthComputable) progress.value = (100 * e.loaded) / e.total;
    if (e.loaded === e.total) $("upload-state").textContent = "ingesting…";
  };
  request.onloadend = async () => {
    $("upload-submit").disabled = false;
    progress.hidden = true;
    let data = {};
    try { data = JSON.parse(request.responseText); } catch { /* not JSON: reported below */ }
    if (request.status < 200 || request.status >= 300) {
      $("upload-state").textContent = "";
      banner("docs-banner", "error", request.status ? errorText(request.status, data) : "the upload did not reach the server");
      return;
    }
    $("upload-state").textContent = data.failed ? `${data.failed} file(s) failed` : "done";
    const table = $("upload-results");
    table.hidden = false;
    table.querySelector("tbody").replaceChildren(
      ...data.files.map((f) =>
        el("tr", { class: f.status === "failed" ? "failed" : "" },
          el("td", { text: f.file }), el("td", { text: f.status }), el("td", { text: String(f.chunks ?? "") }), el("td", { text: f.reason || "" })),
      ),
    );
    $("docs-new").value = "";
    await loadCollections(collection);
    $("docs-collection").value = collection;
    loadDocuments();
  };
  request.send(form);
}

$("upload-form").addEventListener("submit", upload);
$("docs-collection").addEventListener("change", loadDocuments);

// -- start -----------------------------------------------------------------------------------
window.addEventListener("hashchange", showPage);
showKeyState();
loadCollections().then(() => {
  renderConversation({ lastShownBelow: false });
  showPage();
});
checkHealth();
