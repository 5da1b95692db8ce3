// Watches the kiosk's own scripts load: kiosk.js and the modules it imports. If one of them fails to
// load (a connection the network or a busy server dropped, a server restarting), the page would stay
// dead while still saying "Present your badge"; instead it says so and loads itself again, after
// 0.5 s doubling to 10 s (docs/web-kiosk.md, section 5). A classic script run before the module's
// tag: a module graph that fails to load fires "error" at its script element, which a capture
// listener on the window sees.
(() => {
  const FAILURES = "wayray.page-load-failures";
  window.addEventListener("error", (e) => {
    if (!(e.target instanceof HTMLScriptElement)) return;
    const n = Number(sessionStorage.getItem(FAILURES) || 0);
    sessionStorage.setItem(FAILURES, String(n + 1));
    const wait = Math.min(10000, 500 * 2 ** n);
    const why = `the page could not load ${e.target.src || "a script"}`;
    console.warn(`${why}; loading it again in ${wait} ms`);
    const say = () => {
      const p = document.getElementById("idle-reason");
      if (p) p.textContent = `${why}. Trying again in ${Math.ceil(wait / 1000)} s…`;
    };
    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", say); else say();
    setTimeout(() => location.reload(), wait);
  }, true);
  window.addEventListener("load", () => { if (window.wayray) sessionStorage.removeItem(FAILURES); });
})();
