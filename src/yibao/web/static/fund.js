// 基金看板: draws the charts from the JSON block the server rendered (no inline script: CSP 'self').
(function () {
  var node = document.getElementById("fund-data");
  if (!node || !window.echarts) return;
  var data = JSON.parse(node.textContent || "{}");
  if (!data.schemes) return;
  var font = {fontFamily: "Noto Sans CJK SC, WenQuanYi Micro Hei, Microsoft YaHei, sans-serif"};
  function chart(id) {
    var el = document.getElementById(id);
    return el ? echarts.init(el, null, {renderer: "svg"}) : null;
  }
  var band = data.band;
  data.schemes.forEach(function (s) {
    var c = chart("chart-month-" + s.insutype);
    if (c) c.setOption({
      textStyle: font, animation: false, tooltip: {trigger: "axis"},
      legend: {data: ["收入", "支出", "累计结余"]},
      xAxis: {type: "category", data: s.months},
      yAxis: {type: "value", name: "元"},
      series: [{name: "收入", type: "bar", data: s.income}, {name: "支出", type: "bar", data: s.expense},
               {name: "累计结余", type: "line", data: s.accumulated}]
    });
    var p = chart("chart-payout-" + s.insutype);
    if (p) {
      var areas = band ? [
        [{name: "严重预警", yAxis: 0, itemStyle: {color: "rgba(164,0,15,0.12)"}}, {yAxis: band.severe_months}],
        [{name: "预警", yAxis: band.severe_months, itemStyle: {color: "rgba(240,160,0,0.15)"}}, {yAxis: band.warning_months}],
        [{name: "结余过多", yAxis: band.over_months, itemStyle: {color: "rgba(11,79,138,0.10)"}}, {yAxis: band.over_months * 1.5}]
      ] : [];
      p.setOption({
        textStyle: font, animation: false, tooltip: {trigger: "axis"},
        xAxis: {type: "category", data: s.months},
        yAxis: {type: "value", name: "可支付月数"},
        series: [{name: "可支付月数", type: "line", data: s.payout, markArea: {silent: true, data: areas}}]
      });
    }
    var j = chart("chart-proj-" + s.insutype);
    if (j) {
      var series = [], years = [];
      Object.keys(s.projection).forEach(function (k) {
        var sc = s.projection[k];
        years = sc.years.map(function (y) { return String(y); });  // integer years, never 2,025.5
        series.push({name: data.scenario_names[k] || k, type: "line", data: sc.closing});
      });
      j.setOption({
        textStyle: font, animation: false, tooltip: {trigger: "axis"},
        legend: {data: series.map(function (x) { return x.name; })},
        xAxis: {type: "category", data: years, name: "年度"},
        yAxis: {type: "value", name: "元"},
        series: series
      });
    }
  });
})();
