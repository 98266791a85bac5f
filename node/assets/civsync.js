// civsync office pages: the only script of our own. No inline script
// anywhere (the pages' Content-Security-Policy forbids it), so behaviour is
// bound here by data attributes.
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  // <button data-print>: print the page (the service certificate).
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-print]");
    if (button) {
      event.preventDefault();
      window.print();
    }
  });

  // <input data-filter>: show only the picker's entries containing the text.
  document.addEventListener("input", function (event) {
    var box = event.target.closest("input[data-filter]");
    if (!box) {
      return;
    }
    var labels = box.parentNode.querySelectorAll(".picker label");
    for (var i = 0; i < labels.length; i++) {
      labels[i].hidden = labels[i].textContent.indexOf(box.value) < 0;
    }
  });

  // <form data-confirm="question">: ask before sending (a deletion).
  document.addEventListener(
    "submit",
    function (event) {
      var form = event.target.closest("form[data-confirm]");
      if (form && !window.confirm(form.getAttribute("data-confirm"))) {
        event.preventDefault();
        event.stopImmediatePropagation();
      }
    },
    true
  );

  // <form data-upload>: send the chosen file as the request body (the
  // import endpoints take the file's own bytes), show the upload's progress,
  // then the server's per-row report in the form's [data-report] element.
  document.addEventListener("submit", function (event) {
    var form = event.target.closest("form[data-upload]");
    if (!form) {
      return;
    }
    event.preventDefault();
    var input = form.querySelector('input[type="file"]');
    var bar = form.querySelector("progress");
    var state = form.querySelector("[data-state]");
    var report = document.getElementById(form.getAttribute("data-report"));
    var button = form.querySelector('button[type="submit"]');
    if (!input || !input.files || input.files.length !== 1) {
      state.textContent = "请先选择一个文件";
      return;
    }
    var file = input.files[0];
    var format = /\.xlsx$/i.test(file.name) ? "xlsx" : "csv";
    var params = new URLSearchParams();
    params.set("format", format);
    var station = form.querySelector('[name="station"]');
    if (station && station.value.trim() !== "") {
      params.set("station", station.value.trim());
    }
    var xhr = new XMLHttpRequest();
    xhr.open("POST", form.getAttribute("action") + "?" + params.toString());
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    xhr.setRequestHeader("X-CSRF-Token", csrfToken());
    bar.hidden = false;
    bar.value = 0;
    button.disabled = true;
    state.textContent = "正在上传 " + file.name + "……";
    xhr.upload.onprogress = function (e) {
      if (e.lengthComputable) {
        bar.max = e.total;
        bar.value = e.loaded;
      }
    };
    xhr.upload.onload = function () {
      // Uploaded; the node now reads, checks and writes: no measure of
      // that arrives, so the bar turns indeterminate.
      bar.removeAttribute("value");
      state.textContent = "已上传，正在校验并写入……";
    };
    xhr.onload = function () {
      bar.hidden = true;
      button.disabled = false;
      state.textContent = xhr.status < 300 ? "完成" : "未导入（见下方原因）";
      report.innerHTML = xhr.responseText;
    };
    xhr.onerror = function () {
      bar.hidden = true;
      button.disabled = false;
      state.textContent = "上传失败：与本机节点的连接中断，请重试";
    };
    xhr.send(file);
  });
})();
