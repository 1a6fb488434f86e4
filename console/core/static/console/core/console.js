// Polls (hx-trigger="every 1s") wait while the tab is hidden. htmx's own trigger filters
// (`every 1s [document.visibilityState === 'visible']`) are compiled with Function(), which the
// Content Security Policy forbids, so the console holds those requests back here instead.
document.addEventListener("htmx:confirm", function (event) {
  var trigger = event.detail.elt.getAttribute("hx-trigger") || "";
  var polled = event.detail.triggeringEvent == null && /(^|,)\s*every\s/.test(trigger);
  if (polled && document.visibilityState === "hidden") {
    event.preventDefault();
  }
});
