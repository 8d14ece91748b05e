// homeostat console: the reports list follows the API server live. The
// server sends each changed report's row already rendered and escaped (or
// none, to take the row away); nothing else on the page changes.
"use strict";
(function () {
  const rows = document.querySelector("#reports tbody");
  if (!rows || !window.EventSource) return;
  const status = document.querySelector("#live");
  const source = new EventSource("/reports/live" + window.location.search);
  source.onopen = () => { if (status) status.textContent = "live"; };
  source.onerror = () => { if (status) status.textContent = "reconnecting…"; };
  source.addEventListener("report", (event) => {
    const update = JSON.parse(event.data);
    const old = Array.from(rows.querySelectorAll("tr[data-report]"))
      .find((tr) => tr.dataset.report === update.key);
    if (update.row === null) {
      if (old) old.remove();
      return;
    }
    const template = document.createElement("template");
    template.innerHTML = update.row;
    const fresh = template.content.firstElementChild;
    if (old) {
      old.replaceWith(fresh);
    } else {
      rows.prepend(fresh);
    }
    const empty = rows.querySelector("tr.empty");
    if (empty) empty.remove();
  });
})();
