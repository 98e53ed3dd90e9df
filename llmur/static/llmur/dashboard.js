// Draws the admin dashboard's spend-per-day chart from the JSON the page embeds (no network calls).
(function () {
  "use strict";
  var canvas = document.getElementById("spend-chart");
  var source = document.getElementById("spend-chart-data");
  if (!canvas || !source || typeof Chart === "undefined") { return; }
  var data = JSON.parse(source.textContent);
  var chart = new Chart(canvas, {
    type: "bar",
    data: { labels: data.labels, datasets: [{ label: "USD", data: data.values, backgroundColor: "#417690" }] },
    options: { animation: false, plugins: { legend: { display: false } },
               scales: { y: { beginAtZero: true } } }
  });
  // Exposed for tests and for people poking at the page: the numbers the chart shows.
  window.llmurSpendChart = { labels: chart.data.labels, values: chart.data.datasets[0].data };
})();
