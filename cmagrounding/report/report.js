(function(){
  var video = document.getElementById("player");
  var stopBox = document.getElementById("stop-at-end");
  var stopAt = null;
  function seek(start, end){
    if (!video) return;
    video.currentTime = start;
    stopAt = (stopBox && stopBox.checked) ? end : null;
    var p = video.play();
    if (p && p.catch) p.catch(function(){});
  }
  var targets = document.querySelectorAll("[data-start]");
  for (var i = 0; i < targets.length; i++) {
    targets[i].addEventListener("click", function(ev){
      ev.preventDefault();
      seek(parseFloat(this.getAttribute("data-start")), parseFloat(this.getAttribute("data-end")));
    });
  }
  if (!video) return;
  var duration = parseFloat(document.body.getAttribute("data-duration"));
  var heads = document.querySelectorAll(".playhead");
  var moments = document.querySelectorAll(".moment");
  video.addEventListener("timeupdate", function(){
    var t = video.currentTime;
    if (stopAt !== null && t >= stopAt) { video.pause(); stopAt = null; }
    var left = (100 * Math.min(t, duration) / duration) + "%";
    for (var j = 0; j < heads.length; j++) heads[j].style.left = left;
    for (var k = 0; k < moments.length; k++) {
      var m = moments[k];
      var on = t >= parseFloat(m.getAttribute("data-start")) && t < parseFloat(m.getAttribute("data-end"));
      m.classList.toggle("active", on);
    }
  });
})();
