// Optional enhancement: "Copy" buttons next to values; every page works without it.
document.querySelectorAll("button.copy").forEach(function (button) {
  if (!navigator.clipboard) return;
  button.hidden = false;
  button.addEventListener("click", function () {
    var text = document.getElementById(button.dataset.copy).textContent;
    navigator.clipboard.writeText(text).then(function () { button.textContent = "Copied"; });
  });
});
