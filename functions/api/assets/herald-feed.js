// placeholder
customElements.define('herald-feed', class extends HTMLElement {});
