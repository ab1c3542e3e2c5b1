// The player follows every choice: the table row of what plays is highlighted, the player seeks to its start
// and, for a chosen row / point / range, plays it and pauses at its end. The seek itself also comes from the
// Python side (gr.Video(playback_position=...)); setting currentTime here covers choosing the same row twice.
// Gradio runs this as an event's `js`: one arrow function taking the event's input, [start, end, row, play].
(segment) => {
  if (!segment || segment.length < 2) return;
  const [start, end, row, play] = segment;
  let style = document.getElementById('univtg-playing-row');
  if (!style) {
    style = document.createElement('style');
    style.id = 'univtg-playing-row';
    document.head.appendChild(style);
  }
  // A rule, not a class: Gradio's table re-renders its rows, a stylesheet survives that.
  style.textContent = Number.isInteger(row) && row >= 0
    ? `#moments [role=row][data-index="${row}"] [role=gridcell] { background: #ede9fe !important; }
       #moments [role=row][data-index="${row}"] [role=gridcell]:first-child { box-shadow: inset 4px 0 #7c3aed; }`
    : '';
  const video = document.querySelector('#player video');
  if (!video) return;
  if (video._univtgStop) video.removeEventListener('timeupdate', video._univtgStop);
  const stop = () => {
    if (video.currentTime >= end - 0.05) {
      video.pause();
      video.removeEventListener('timeupdate', stop);
      video._univtgStop = null;
    }
  };
  const go = () => {
    if (Math.abs(video.currentTime - start) > 0.2) video.currentTime = start;
    if (!play) return;
    video._univtgStop = stop;
    video.addEventListener('timeupdate', stop);
    const playing = video.play();
    if (playing && playing.catch) playing.catch(() => {});
  };
  if (video.readyState >= 1) go(); else video.addEventListener('loadedmetadata', go, { once: true });
}
