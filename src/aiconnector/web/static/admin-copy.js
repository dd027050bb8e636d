// Copy buttons on the admin pages: <button data-copy="ID" hidden> copies the text of the
// element with that id. Buttons start hidden, so without this script (or without a clipboard)
// the text is still on the page to select by hand. Loaded from /static: the admin CSP allows
// no inline script.
(function () {
  "use strict";

  var status = document.getElementById("copy-status");

  function announce(button, label, message) {
    button.textContent = label;
    button.setAttribute("data-state", "done");
    if (status) status.textContent = message;
    window.setTimeout(function () {
      button.textContent = button.getAttribute("data-label");
      button.removeAttribute("data-state");
    }, 2000);
  }

  function selectText(element) {
    var range = document.createRange();
    range.selectNodeContents(element);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  function copy(button) {
    var source = document.getElementById(button.getAttribute("data-copy"));
    if (!source) return;
    var text = source.textContent;
    // Plain http on a non-local host is not a secure context: no clipboard API there.
    if (!navigator.clipboard || !window.isSecureContext) {
      selectText(source);
      announce(button, "Selected: press Ctrl+C", "Text selected; press Ctrl+C or Command+C to copy.");
      return;
    }
    navigator.clipboard.writeText(text).then(
      function () { announce(button, "Copied", "Copied to the clipboard."); },
      function () {
        selectText(source);
        announce(button, "Selected: press Ctrl+C", "Could not copy; the text is selected instead.");
      }
    );
  }

  var buttons = document.querySelectorAll("button[data-copy]");
  for (var i = 0; i < buttons.length; i++) {
    var button = buttons[i];
    button.setAttribute("data-label", button.textContent);
    button.hidden = false;
    button.addEventListener("click", function (event) { copy(event.currentTarget); });
  }
})();
