// The queue page's script (src/web/queue.rs), compiled into the binary; no inline script
// (the Content-Security-Policy forbids it). It keeps each item up to date from the server's
// events (/api/queue/events) and sends the controls' forms with the token as a bearer token.
(function () {
  'use strict';
  var queue = document.getElementById('queue');
  if (!queue) { return; }
  var reloading = false;

  function time(ms) {
    return new Date(ms).toISOString().slice(0, 19).replace('T', ' ');
  }

  function setText(root, selector, text) {
    var element = root.querySelector(selector);
    if (element) { element.textContent = text; }
  }

  var statuses = ['queued', 'submitted', 'rendering', 'grid_done', 'upscaling', 'done', 'partial', 'failed', 'cancelled'];

  // The line of counts, as the server writes it: "4 items: 1 rendering, 3 done".
  function recount() {
    var articles = queue.querySelectorAll('article.item');
    var parts = statuses.map(function (status) {
      var n = 0;
      articles.forEach(function (article) { if (article.dataset.status === status) { n += 1; } });
      return n > 0 ? n + ' ' + status : null;
    }).filter(function (part) { return part !== null; });
    setText(document, '#queue-counts', articles.length + ' items' + (parts.length ? ': ' + parts.join(', ') : ''));
  }

  function render(state) {
    var item = state.item;
    var article = document.getElementById('q-' + item.id);
    if (!article) {
      // A new item: the server renders it.
      if (!reloading) { reloading = true; location.reload(); }
      return;
    }
    article.dataset.status = item.status;
    setText(article, '.status', item.status);
    setText(article, '.attempts', String(item.attempts));
    setText(article, '.upscales', state.upscales);
    setText(article, '.error', item.last_error || '');
    var rendering = article.querySelector('.rendering');
    if (state.rendering) {
      rendering.hidden = false;
      var bar = rendering.querySelector('progress');
      if (state.rendering.percent === null) { bar.removeAttribute('value'); } else { bar.value = state.rendering.percent; }
      setText(rendering, '.stage', state.rendering.stage);
      var preview = rendering.querySelector('.preview');
      if (state.rendering.preview) {
        preview.href = state.rendering.preview.url;
        preview.title = state.rendering.preview.filename;
        preview.hidden = false;
      } else {
        preview.hidden = true;
      }
    } else {
      rendering.hidden = true;
    }
    var cancel = article.querySelector('form.cancel');
    if (cancel) { cancel.hidden = ['done', 'partial', 'failed', 'cancelled'].indexOf(item.status) >= 0; }
    var history = article.querySelector('.history');
    history.textContent = '';
    state.history.forEach(function (t) {
      var li = document.createElement('li');
      li.textContent = time(t.at_ms) + ' ' + (t.from || '-') + ' \u2192 ' + t.to + ' ' + t.note;
      history.appendChild(li);
    });
    recount();
  }

  var source = new EventSource('/api/queue/events');
  source.addEventListener('item', function (event) { render(JSON.parse(event.data)); });
  source.addEventListener('queue', function (event) {
    var paused = JSON.parse(event.data).paused;
    var label = document.getElementById('queue-paused');
    label.dataset.paused = String(paused);
    label.textContent = paused ? 'Paused' : 'Running';
  });

  // The controls: each form is sent with the token; the answer is shown, the events do the rest.
  var token = document.getElementById('queue-token');
  var message = document.getElementById('queue-message');
  token.value = sessionStorage.getItem('mjlink-token') || '';
  token.addEventListener('change', function () { sessionStorage.setItem('mjlink-token', token.value); });
  document.addEventListener('submit', function (event) {
    var form = event.target;
    if (!form.classList || !form.classList.contains('control')) { return; }
    event.preventDefault();
    var body = null;
    if (form.dataset.kind === 'add') {
      body = JSON.stringify({ prompt: form.elements.prompt.value, upscale: form.elements.upscale.value });
    }
    fetch(form.getAttribute('action'), {
      method: 'POST',
      headers: { 'Authorization': 'Bearer ' + token.value, 'Content-Type': 'application/json' },
      body: body
    }).then(function (response) {
      return response.json().then(function (answer) {
        message.textContent = response.ok ? 'Done.' : (answer.error || ('Refused: ' + response.status));
        if (response.ok && form.dataset.kind === 'add') { form.reset(); }
      });
    }).catch(function (error) { message.textContent = 'Not sent: ' + error; });
  });
}());
