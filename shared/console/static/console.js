// Draws the profit page's charts from the JSON the server embedded (no inline scripts).
document.addEventListener("DOMContentLoaded", function () {
  var node = document.getElementById("profit-data");
  if (!node || typeof Chart === "undefined") return;
  var data = JSON.parse(node.textContent);
  function money(id, series, title) {
    new Chart(document.getElementById(id), {
      type: "line",
      data: {
        labels: series.labels,
        datasets: [
          { label: "revenue (USD)", data: series.revenue, borderColor: "#2563eb" },
          { label: "cost (USD)", data: series.cost, borderColor: "#dc2626" },
          { label: "profit (USD)", data: series.profit, borderColor: "#16a34a" }
        ]
      },
      options: { animation: false, maintainAspectRatio: false,
                 plugins: { title: { display: true, text: title } } }
    });
  }
  function margin(id, series, title) {
    new Chart(document.getElementById(id), {
      type: "bar",
      data: { labels: series.labels,
              datasets: [{ label: "margin %", data: series.margin, backgroundColor: "#7c3aed" }] },
      options: { animation: false, maintainAspectRatio: false,
                 plugins: { title: { display: true, text: title } } }
    });
  }
  money("daily-chart", data.daily, "Daily revenue, cost, profit");
  margin("daily-margin", data.daily, "Daily margin");
  money("monthly-chart", data.monthly, "Monthly revenue, cost, profit");
  margin("monthly-margin", data.monthly, "Monthly margin");
  new Chart(document.getElementById("engine-chart"), {
    type: "bar",
    data: { labels: data.engines.labels,
            datasets: [{ label: "cost (USD)", data: data.engines.cost,
                         backgroundColor: "#dc2626" }] },
    options: { animation: false, maintainAspectRatio: false, indexAxis: "y",
               plugins: { title: { display: true, text: "Cost by engine" } } }
  });
  var palette = ["#2563eb", "#16a34a", "#f59e0b", "#7c3aed", "#db2777", "#0891b2", "#65a30d",
                 "#9ca3af"];
  new Chart(document.getElementById("plan-chart"), {
    type: "doughnut",
    data: { labels: data.plans.labels,
            datasets: [{ label: "revenue (USD)", data: data.plans.revenue,
                         backgroundColor: data.plans.labels.map(function (_, i) {
                           return palette[i % palette.length]; }) }] },
    options: { animation: false, maintainAspectRatio: false,
               plugins: { title: { display: true, text: "Plan mix: revenue by plan" } } }
  });
});
