// mailsec console: while a bulk job runs, fetch its page every two seconds and swap in the new progress section,
// so the figures move without a reload (keyboard focus stays where it is). Without this file the page has a
// "Refresh" link.
"use strict";

(() => {
  const live = () => document.getElementById("job-live");
  const tick = async () => {
    const section = live();
    if (!section || section.dataset.running !== "true") return;
    try {
      const response = await fetch(window.location.href, { credentials: "same-origin", cache: "no-store" });
      if (response.ok) {
        const page = new DOMParser().parseFromString(await response.text(), "text/html");
        const fresh = page.getElementById("job-live");
        if (fresh) section.replaceWith(fresh);
      }
    } catch (error) {
      // a missed update: the next tick tries again
    }
    window.setTimeout(tick, 2000);
  };
  window.setTimeout(tick, 2000);
})();
