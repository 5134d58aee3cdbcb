/* The portal's own script (the Content-Security-Policy allows no inline script).
 *
 * The error summary, GOV.UK's pattern: when a page arrives with one, focus moves to it, so a
 * screen reader announces "There is a problem" and the list. Each of its links names an input;
 * that input is marked aria-invalid and described by its message, shown beside it. A link whose
 * input is not on the page becomes plain text. The same wiring runs on answers HTMX swaps in
 * (the home page's lookup), without moving focus away from the box being typed in.
 */
(function () {
  "use strict";

  // Marks made for a summary HTMX swapped into `owner` go when the next answer replaces it.
  function clearMarks(owner) {
    document.querySelectorAll("[data-marked-invalid='" + owner + "']").forEach(function (input) {
      input.removeAttribute("aria-invalid");
      input.removeAttribute("data-marked-invalid");
      var message = document.getElementById(input.id + "-error");
      if (message) {
        message.remove();
      }
      var rest = (input.getAttribute("aria-describedby") || "").split(/\s+/).filter(function (id) {
        return id && id !== input.id + "-error";
      });
      if (rest.length) {
        input.setAttribute("aria-describedby", rest.join(" "));
      } else {
        input.removeAttribute("aria-describedby");
      }
    });
  }

  function labelOf(input) {
    return document.querySelector("label[for='" + input.id + "']");
  }

  function wire(summary, owner) {
    summary.querySelectorAll("a[href^='#']").forEach(function (link) {
      var input = document.getElementById(link.getAttribute("href").slice(1));
      if (!input || input === summary) {
        link.replaceWith(document.createTextNode(link.textContent));
        return;
      }
      var id = input.id + "-error";
      if (!document.getElementById(id)) {
        var message = document.createElement("p");
        message.id = id;
        message.className = "field-error";
        var hidden = document.createElement("span");
        hidden.className = "sr";
        hidden.textContent = "Error: ";
        message.appendChild(hidden);
        message.appendChild(document.createTextNode(link.dataset.message || link.textContent));
        input.parentNode.insertBefore(message, input);
      }
      input.setAttribute("aria-invalid", "true");
      input.setAttribute("data-marked-invalid", owner);
      var described = (input.getAttribute("aria-describedby") || "").split(/\s+/).filter(Boolean);
      if (described.indexOf(id) < 0) {
        described.unshift(id);
      }
      input.setAttribute("aria-describedby", described.join(" "));
      link.addEventListener("click", function (event) {
        // Show the label with the input (the browser would scroll the input alone to the top).
        event.preventDefault();
        (labelOf(input) || input).scrollIntoView({ block: "start" });
        input.focus({ preventScroll: true });
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var summary = document.querySelector("[data-error-summary]");
    if (summary) {
      wire(summary, "page");
      summary.focus();
    }
    document.body.addEventListener("htmx:afterSwap", function (event) {
      var swapped = event.detail && event.detail.target;
      if (!swapped || !swapped.id) {
        return;
      }
      clearMarks(swapped.id);
      var inner = swapped.querySelector("[data-error-summary]");
      if (inner) {
        wire(inner, swapped.id);
      }
    });
  });
})();
